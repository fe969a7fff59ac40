/**
 * The seed's per-file signature (`edge-net-models sign ./my-model-q4.onnx --key ./private-key.pem`,
 * `artifacts.model.signature` in a manifest): Ed25519 over a short canonical statement of the file's
 * SHA-256 and size, written beside the file as `<file>.sig`, verifiable with any Ed25519 library.
 */
import { Data, Effect, Schema } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { canonicalize } from "../domain/CanonicalJson.js"
import { KeyId, PublicKeyHex, Sha256Hex } from "./Manifest.js"
import type { ManifestSigner } from "./ManifestSigning.js"
import { verifySignature } from "./NodeKey.js"
import { UnixFsBuilder } from "./UnixFs.js"

export class ArtifactSignatureError
  extends Data.TaggedError("ArtifactSignatureError")<{ readonly file: string; readonly reason: string }>
{
  override get message() {
    return `${this.file}: ${this.reason}`
  }
}

/** A file's size, SHA-256 (hex) and IPFS CID, read once. */
export interface FileDescription {
  readonly size: number
  readonly sha256: string
  readonly cid: string
}

export const describeFile = (file: string) =>
  Effect.tryPromise({
    try: async (): Promise<FileDescription> => {
      const hash = crypto.createHash("sha256")
      const builder = UnixFsBuilder.make()
      for await (
        const chunk of fs.createReadStream(file, { highWaterMark: 4 * 1024 * 1024 }) as AsyncIterable<Buffer>
      ) {
        hash.update(chunk)
        builder.update(chunk)
      }
      const layout = builder.finish()
      return { size: layout.size, sha256: hash.digest("hex"), cid: layout.root }
    },
    catch: (cause) =>
      new ArtifactSignatureError({
        file,
        reason: `cannot read it (${cause instanceof Error ? cause.message : String(cause)})`
      })
  })

/** `<file>.sig`: who signed which bytes, and the signature in base64 (the form the seed's manifest shows). */
export const ArtifactSignatureFile = Schema.Struct({
  type: Schema.Literal("ed25519-artifact-v1"),
  filename: Schema.String,
  size: Schema.Number,
  sha256: Sha256Hex,
  keyId: KeyId,
  publicKey: PublicKeyHex,
  signature: Schema.String
})
export type ArtifactSignatureFile = typeof ArtifactSignatureFile.Type

/** The bytes signed: what the file is, never where it lies, so a renamed or re-hosted copy still verifies. */
export const artifactStatement = (sha256: string, size: number) =>
  canonicalize({ type: "ed25519-artifact-v1", sha256, size })

export const signatureFileOf = (file: string) => `${file}.sig`

/** Signs `file` with `signer` and writes `<file>.sig`; returns what it wrote. */
export const signArtifact = (file: string, signer: ManifestSigner) =>
  Effect.gen(function*() {
    const described = yield* describeFile(file)
    const signature: ArtifactSignatureFile = {
      type: "ed25519-artifact-v1",
      filename: path.basename(file),
      size: described.size,
      sha256: described.sha256,
      keyId: signer.keyId,
      publicKey: signer.publicKey,
      signature: Buffer.from(signer.sign(artifactStatement(described.sha256, described.size)), "hex").toString("base64")
    }
    const target = signatureFileOf(file)
    yield* Effect.try({
      try: () => fs.writeFileSync(target, JSON.stringify(signature, null, 2) + "\n"),
      catch: (cause) =>
        new ArtifactSignatureError({ file: target, reason: cause instanceof Error ? cause.message : String(cause) })
    })
    return { file: target, signature }
  })

/** True when `signature` (base64, as in a manifest) is `publicKey`'s Ed25519 signature of a file of this digest and size. */
export const verifyArtifactSignature = (
  signature: string,
  publicKey: string,
  sha256: string,
  size: number
): boolean => {
  const bytes = /^[A-Za-z0-9+/]+={0,2}$/.test(signature) ? Buffer.from(signature, "base64") : undefined
  return bytes !== undefined && bytes.length === 64 &&
    verifySignature(publicKey, artifactStatement(sha256, size), bytes.toString("hex"))
}
