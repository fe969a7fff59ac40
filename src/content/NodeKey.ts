/**
 * The node's Ed25519 identity: generated on first start, kept in a 0600 file in the data dir, used to
 * sign journal heads and, later, every message that changes another node's state.
 */
import { Context, Data, Effect, Either, Layer, Schema } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { ed25519, utf8 } from "../domain/Ed25519.js"
import { jsonDecoderSync, JsonTextError } from "../domain/JsonText.js"
import { writeFileAtomicallySync } from "../node/AtomicFile.js"
import { keyPairFromSeed, nodeIdOf, type NodeKeyPair } from "./NodeKeyPair.js"

export { keyPairFromSeed, nodeIdOf, type NodeKeyPair }

export class NodeKeyError extends Data.TaggedError("NodeKeyError")<{ readonly path: string; readonly reason: string }> {
  override get message() {
    return `node key ${this.path}: ${this.reason}`
  }
}

/**
 * Verifies an Ed25519 signature (hex) by a raw public key (hex); false on any malformed input. One
 * signing service for the whole node (src/domain/Ed25519.ts), with its bounded cache of parsed keys.
 */
export const verifySignature = (publicKeyHex: string, message: Uint8Array | string, signatureHex: string): boolean =>
  ed25519.verify(publicKeyHex, typeof message === "string" ? utf8(message) : message, signatureHex)

export const generateKeyPair = (): NodeKeyPair => keyPairFromSeed(crypto.randomBytes(32))

const KeyFile = Schema.Struct({
  type: Schema.Literal("ed25519"),
  publicKey: Schema.optional(Schema.String),
  seed: Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/, { message: () => "expected 64 lowercase hex digits" }))
})
type KeyFile = typeof KeyFile.Type
const decodeKeyFile = jsonDecoderSync(KeyFile)

/** Reads the key file, or creates it (mode 0600, written atomically) when it does not exist yet. */
export const loadOrCreateKeyFile = (file: string): Effect.Effect<NodeKeyPair, NodeKeyError> =>
  Effect.zipLeft(readOrCreateKeyFile(file), warnWhenReadableByOthers(file))

/** A key file others can read is a key others may hold: say so, with the fix, on every load. */
const warnWhenReadableByOthers = (file: string) =>
  Effect.suspend(() => {
    const mode = fs.statSync(file).mode & 0o777
    return (mode & 0o044) === 0
      ? Effect.void
      : Effect.logWarning(
        `${path.basename(file)} is readable by other users (mode 0${mode.toString(8)}): chmod 600 ${file}`
      )
  }).pipe(Effect.catchAllDefect(() => Effect.void))

const readOrCreateKeyFile = (file: string): Effect.Effect<NodeKeyPair, NodeKeyError> =>
  Effect.try({
    try: () => {
      if (fs.existsSync(file)) {
        const text = fs.readFileSync(file, "utf8")
        const parsed = Either.getOrThrowWith(
          Either.try(() => decodeKeyFile(text, file)),
          (error) =>
            new Error(
              `not an edge-net ed25519 key file (${error instanceof JsonTextError ? error.problem : String(error)})`
            )
        )
        const pair = keyPairFromSeed(Buffer.from(parsed.seed, "hex"))
        if (parsed.publicKey !== undefined && parsed.publicKey !== pair.publicKey) {
          throw new Error("public key does not match the seed")
        }
        return pair
      }
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
      const seed = crypto.randomBytes(32)
      const pair = keyPairFromSeed(seed)
      const body: KeyFile = { type: "ed25519", publicKey: pair.publicKey, seed: seed.toString("hex") }
      writeFileAtomicallySync(file, JSON.stringify(body, null, 2) + "\n", { mode: 0o600 })
      return pair
    },
    catch: (cause) => new NodeKeyError({ path: file, reason: cause instanceof Error ? cause.message : String(cause) })
  })

export class NodeKey extends Context.Tag("edge-net/NodeKey")<NodeKey, NodeKeyPair>() {
  static readonly fromFile = (file: string) => Layer.effect(NodeKey, loadOrCreateKeyFile(file))
  /** A fresh key for tests and in-memory nodes. */
  static readonly ephemeral = Layer.sync(NodeKey, generateKeyPair)
  /**
   * Another node's identity, known by its public key only: for reading and auditing a copy of its
   * feed, where nothing may be signed in its name (signing is a defect).
   */
  static readonly publicOnly = (publicKey: string) =>
    Layer.succeed(NodeKey, {
      nodeId: nodeIdOf(publicKey),
      publicKey,
      seed: new Uint8Array(0),
      sign: () => {
        throw new Error(`cannot sign as ${publicKey}: only its public key is known here`)
      }
    })
}
