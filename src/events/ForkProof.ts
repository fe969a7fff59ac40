/**
 * Proof that a key signed two histories of its journal: two signed heads that cannot both be on one
 * chain. It stands on its own: anyone checks it with nothing but the key, so a peer that catches a
 * node equivocating can show it to every other peer, and the economy can slash on it.
 */
import { Schema } from "effect"
import { verifySignature } from "../content/NodeKey.js"
import { PublicKeyHex, SignatureHex } from "../domain/SignedCommand.js"
import { envelopeHash, headMessage } from "./Envelope.js"

export const Hash = Schema.String.pipe(
  Schema.pattern(/^[0-9a-f]{64}$/, { message: () => "a hash is 64 lowercase hex digits" })
)
export const Position = Schema.Int.pipe(Schema.nonNegative())

export const StoredRecordWire = Schema.Struct({
  position: Position,
  streamId: Schema.String,
  streamVersion: Position,
  eventType: Schema.String,
  payloadText: Schema.String,
  recordedAt: Schema.String,
  nodeId: Schema.String,
  commandId: Schema.NullOr(Schema.String),
  causationId: Schema.NullOr(Schema.String),
  authorizationText: Schema.NullOr(Schema.String),
  prevHash: Hash,
  hash: Hash
})

/** Most events a fork proof carries between its two heads. */
export const MAX_PROOF_CHAIN = 1_000

const SignedPoint = Schema.Struct({ position: Position, hash: Hash, signature: SignatureHex })

/**
 * Proof that one key signed two histories: `first` and `second` are heads it signed, `first` no
 * later than `second`. For one position the two hashes differ; otherwise `chain` holds the events
 * of the second history from `first.position` to `second.position`, which hash and link up to
 * `second.hash` while the event at `first.position` is not the one `first` signed. Anyone can
 * check it with nothing but the key.
 */
export const ForkProof = Schema.Struct({
  publicKey: PublicKeyHex,
  first: SignedPoint,
  second: SignedPoint,
  chain: Schema.Array(StoredRecordWire).pipe(Schema.maxItems(MAX_PROOF_CHAIN + 1))
})
export type ForkProof = typeof ForkProof.Type

const signed = (publicKey: string, point: { position: number; hash: string; signature: string }) =>
  verifySignature(publicKey, headMessage(point.position, point.hash), point.signature)

/** Whether the proof stands on its own (see `ForkProof`). */
export const forkProofValid = (proof: ForkProof): boolean => {
  const { chain, first, second } = proof
  if (first.position > second.position) return false
  if (first.position === second.position) {
    if (first.hash === second.hash || chain.length !== 0) return false
  } else {
    if (chain.length !== second.position - first.position + 1) return false
    let prevHash: string | undefined
    for (const [i, record] of chain.entries()) {
      if (record.position !== first.position + i || envelopeHash(record) !== record.hash) return false
      if (prevHash !== undefined && record.prevHash !== prevHash) return false
      prevHash = record.hash
    }
    if (chain[0]!.hash === first.hash || prevHash !== second.hash) return false
  }
  return signed(proof.publicKey, first) && signed(proof.publicKey, second)
}

/** What identifies a proof, so peers keep one copy of each whichever way it reached them. */
export const forkProofId = (proof: ForkProof): string =>
  `${proof.publicKey}:${proof.first.position}:${proof.first.hash}:${proof.second.position}:${proof.second.hash}`
