/**
 * A manifest as a publisher writes it by hand, like the seed's example (model-distribution 4.4): JSON
 * with `//` comments, digests and sizes perhaps placeholders, no CID, expiry or publisher key. It is
 * completed from the files beside it; each place where it promises less than it seems to is a warning.
 */
import { Effect, Either } from "effect"
import * as path from "node:path"
import { type FileDescription, verifyArtifactSignature } from "./ArtifactSignature.js"
import { ManifestError, type ModelManifest, parseManifest, signedBody } from "./Manifest.js"

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** JSON with `//` and `/* *\/` comments (outside strings) turned into spaces. */
export const stripJsonComments = (text: string): string => {
  let out = ""
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!
    if (char === "\"") {
      const start = i
      for (i++; i < text.length && text[i] !== "\""; i++) if (text[i] === "\\") i++
      out += text.slice(start, i + 1)
    } else if (char === "/" && text[i + 1] === "/") {
      while (i < text.length && text[i] !== "\n") i++
      out += "\n"
    } else if (char === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2)
      i = end === -1 ? text.length : end + 1
      out += " "
    } else out += char
  }
  return out
}

/** Manifest text: JSON, possibly with comments. Whether a file holds one is told by its first character. */
export const looksLikeManifest = (head: string) => /^\s*[{/]/.test(head)

/** Text that is a manifest, complete or not: a JSON object (comments allowed) with `artifacts`, not just any JSON file. */
export const isManifestText = (text: string): boolean => {
  try {
    const json: unknown = JSON.parse(stripJsonComments(text))
    return isObject(json) && isObject(json["artifacts"])
  } catch {
    return false
  }
}

export interface DraftOptions<E, R> {
  /** Where the artifacts' files are (the manifest's own directory). */
  readonly directory: string
  /** The key that will sign: named publisher, and the key an artifact's own signature must be by. */
  readonly signer: { readonly keyId: string; readonly publicKey: string }
  /** Size, SHA-256 and CID of a file: just reads it to sign, stores it to publish. */
  readonly describe: (file: string) => Effect.Effect<FileDescription, E, R>
  readonly expiresInDays: number
  readonly now?: Date
}

const invalid = (field: string, problem: string) => new ManifestError({ field, problem })

const shown = (value: unknown) => JSON.stringify(value)

const isoSeconds = (date: Date) => date.toISOString().replace(/\.\d{3}Z$/, "Z")

/**
 * The manifest completed and validated (not yet signed), with a warning for each field that was a
 * placeholder or that no one checks. A real digest or CID that does not match its file is an error.
 */
export const completeManifest = <E, R>(text: string, options: DraftOptions<E, R>) =>
  Effect.gen(function*() {
    const json = yield* Effect.try({
      try: (): unknown => JSON.parse(stripJsonComments(text)),
      catch: (cause) => invalid("", `is not JSON (${cause instanceof Error ? cause.message : String(cause)})`)
    })
    if (!isObject(json)) return yield* invalid("", "must be a JSON object")
    // A signed manifest is taken as it is, once its files are found to be the ones it names.
    const signed = json["signatures"] === undefined ? undefined : parseManifest(json)
    if (signed !== undefined && Either.isLeft(signed)) {
      return yield* invalid(
        "signatures",
        `are there, but the manifest is not complete (${signed.left.message}): completing it would change what they signed`
      )
    }
    if (!isObject(json["artifacts"])) return yield* invalid("artifacts", "must be an object of named artifacts")
    const warnings: Array<string> = []
    const artifacts: Record<string, unknown> = {}
    for (const [name, entry] of Object.entries(json["artifacts"])) {
      const field = `artifacts.${name}`
      if (!isObject(entry)) return yield* invalid(field, "must be an object")
      const filename = entry["filename"]
      if (
        typeof filename !== "string" || !/^[^/\\\0]{1,255}$/.test(filename) || filename === "." || filename === ".."
      ) {
        return yield* invalid(`${field}.filename`, "must be a plain file name, without / or \\")
      }
      const described = yield* options.describe(path.join(options.directory, filename))
      const { sha256, size, cid, signature } = entry
      if (typeof sha256 === "string" && /^[0-9a-f]{64}$/.test(sha256) && sha256 !== described.sha256) {
        return yield* invalid(
          `${field}.sha256`,
          `is ${sha256}, but ${filename} beside the manifest has ${described.sha256}`
        )
      }
      if (sha256 !== undefined && sha256 !== described.sha256) {
        warnings.push(
          `${field}.sha256 ${shown(sha256)} is not a SHA-256 digest: set to ${filename}'s, ${described.sha256}`
        )
      }
      if (size !== undefined && size !== described.size) {
        warnings.push(
          `${field}.size ${shown(size)} is not ${filename}'s size: set to ${described.size}`
        )
      }
      if (typeof cid === "string" && /^b[a-z2-7]{50,}$/.test(cid) && cid !== described.cid) {
        return yield* invalid(`${field}.cid`, `is ${cid}, but ${filename} beside the manifest has ${described.cid}`)
      }
      if (
        typeof signature === "string" &&
        !verifyArtifactSignature(signature, options.signer.publicKey, described.sha256, described.size)
      ) {
        warnings.push(
          `${field}.signature ${
            shown(signature.length > 24 ? `${signature.slice(0, 24)}…` : signature)
          } is kept, but nothing checks it: it is not ` +
            `an Ed25519 signature of ${filename} by the signing key ${options.signer.keyId}. The file is protected only by its sha256 in this manifest and the manifest's own signature`
        )
      }
      artifacts[name] = { ...entry, size: described.size, sha256: described.sha256, cid: described.cid }
    }
    const now = options.now ?? new Date()
    const publishedBy = json["publishedBy"]
    if (typeof publishedBy === "string" && publishedBy !== options.signer.keyId) {
      warnings.push(
        `publishedBy ${shown(publishedBy)} is only a name: readers trust the key that signs, ${options.signer.keyId} (${
          options.signer.publicKey.slice(0, 16)
        }…), not this field`
      )
    }
    const completed = {
      ...json,
      artifacts,
      publishedAt: json["publishedAt"] ?? isoSeconds(now),
      publishedBy: publishedBy ?? options.signer.keyId,
      expiresAt: json["expiresAt"] ?? isoSeconds(new Date(now.getTime() + options.expiresInDays * 86_400_000))
    }
    const manifest: ModelManifest = yield* Either.match(parseManifest(completed), {
      onLeft: Effect.fail,
      onRight: Effect.succeed
    })
    if (signed === undefined) return { manifest, warnings }
    if (signedBody(manifest) !== signedBody(signed.right)) {
      return yield* invalid("signatures", "are there, but the files beside the manifest are not the ones it names")
    }
    return { manifest: signed.right, warnings }
  })
