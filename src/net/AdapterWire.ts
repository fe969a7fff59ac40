/**
 * The P2P adapter protocol's four messages (model-distribution seed 9.2, `package edgenet.adapters`)
 * in proto3 wire format, their signatures, and how an adapter is cut into chunks and put back together.
 *
 * Field numbers and types are the seed's. We extend it compatibly, with new field numbers only (a
 * reader of the seed's schema skips them as unknown fields):
 *   AdapterAnnounce  11 `string version`, 12 `bytes manifest` (the publisher's signed manifest, JSON);
 *   AdapterRequest    4 `uint32 chunk_index`, 5 `string version` (the seed's request names no chunk);
 *   AdapterChunk      6 `string version`; `total_chunks = 0` with no data means "not held here".
 * An announcement is signed by the announcing peer (`peer_id` names its Ed25519 key), a report by the
 * reporter (`reporter_id` is its public key, hex). Each signature covers the message encoded without
 * its signature field (fields in number order, proto3 defaults left out), after a domain tag, so a
 * signature on one message type can never be replayed as another.
 */
import { Either } from "effect"
import { ProtobufError, ProtoReader, WireType } from "../compute/onnx/Protobuf.js"
import type { ProtoSink } from "../compute/onnx/Protobuf.js"
import { encodeMessage } from "../compute/onnx/Protobuf.js"
import { sha256, toHex } from "../content/Sha256.js"
import { ed25519, utf8 } from "../domain/Ed25519.js"

export const ADAPTER_PROTOCOL = "/edge-net/adapter/1.0.0"
export const announceTopic = (network: string) => `edge-net/${network}/adapters/1`
export const reportTopic = (network: string) => `edge-net/${network}/adapter-reports/1`

/** kubo's chunk size: small enough for one request/response, large enough that a 10 MB adapter is 40 requests. */
export const CHUNK_SIZE = 256 * 1024
/** Largest chunk answer: the chunk plus its header fields. */
export const MAX_CHUNK_RESPONSE_BYTES = CHUNK_SIZE + 4096
export const MAX_REQUEST_BYTES = 4096

type Kind = "string" | "uint32" | "uint64" | "float" | "bytes"
type ValueOf<K extends Kind> = K extends "string" ? string : K extends "bytes" ? Uint8Array : number
type Spec = ReadonlyArray<readonly [field: number, name: string, kind: Kind]>
type MessageOf<S extends Spec> = { -readonly [F in S[number] as F[1]]: ValueOf<F[2]> }

const wireTypeOf: Readonly<Record<Kind, number>> = {
  string: WireType.LengthDelimited,
  bytes: WireType.LengthDelimited,
  uint32: WireType.Varint,
  uint64: WireType.Varint,
  float: WireType.Fixed32
}

const AnnounceSpec = [
  [1, "adapterId", "string"],
  [2, "name", "string"],
  [3, "baseModel", "string"],
  [4, "rank", "uint32"],
  [5, "domain", "string"],
  [6, "qualityScore", "float"],
  [7, "checksum", "bytes"],
  [8, "signature", "bytes"],
  [9, "peerId", "string"],
  [10, "timestamp", "uint64"],
  [11, "version", "string"],
  [12, "manifest", "bytes"]
] as const
const RequestSpec = [
  [1, "adapterId", "string"],
  [2, "requesterId", "string"],
  [3, "timestamp", "uint64"],
  [4, "chunkIndex", "uint32"],
  [5, "version", "string"]
] as const
const ChunkSpec = [
  [1, "adapterId", "string"],
  [2, "chunkIndex", "uint32"],
  [3, "totalChunks", "uint32"],
  [4, "data", "bytes"],
  [5, "chunkHash", "bytes"],
  [6, "version", "string"]
] as const
const ReportSpec = [
  [1, "adapterId", "string"],
  [2, "reporterId", "string"],
  [3, "qualityScore", "float"],
  [4, "feedback", "string"],
  [5, "timestamp", "uint64"],
  [6, "signature", "bytes"]
] as const

export type AdapterAnnounce = MessageOf<typeof AnnounceSpec>
export type AdapterRequest = MessageOf<typeof RequestSpec>
export type AdapterChunk = MessageOf<typeof ChunkSpec>
export type AdapterReport = MessageOf<typeof ReportSpec>

const isDefault = (value: string | number | Uint8Array) => typeof value === "number" ? value === 0 : value.length === 0

const encoderOf = <S extends Spec>(spec: S, skip?: string) => (message: MessageOf<S>, sink: ProtoSink) => {
  const values = message as Record<string, string | number | Uint8Array>
  for (const [field, name, kind] of spec) {
    const value = values[name]!
    if (name === skip || isDefault(value)) continue
    if (kind === "string") sink.string(field, value as string)
    else if (kind === "bytes") sink.bytes(field, value as Uint8Array)
    else if (kind === "float") sink.float(field, value as number)
    else sink.varint(field, value as number)
  }
}

const decoderOf = <S extends Spec>(type: string, spec: S) => {
  const byField = new Map(spec.map((entry) => [entry[0], entry] as const))
  return (bytes: Uint8Array): Either.Either<MessageOf<S>, string> => {
    const message: Record<string, string | number | Uint8Array> = {}
    for (const [, name, kind] of spec) {
      message[name] = kind === "string" ? "" : kind === "bytes" ? new Uint8Array(0) : 0
    }
    const reader = new ProtoReader(bytes)
    try {
      while (reader.pos < reader.limit) {
        const tag = reader.tag()
        const field = tag >>> 3
        const wireType = tag & 7
        const entry = byField.get(field)
        if (entry === undefined) {
          reader.skip(wireType) // a field of a later version: skipped, as proto3 readers do
          continue
        }
        const [, name, kind] = entry
        if (wireType !== wireTypeOf[kind]) {
          return Either.left(
            `${type}: field ${field} (${name}) has wire type ${wireType}, expected ${wireTypeOf[kind]}`
          )
        }
        if (kind === "string") message[name] = reader.string()
        else if (kind === "bytes") message[name] = reader.bytesField().slice()
        else if (kind === "float") message[name] = reader.float()
        else if (kind === "uint32") message[name] = reader.uint32()
        else message[name] = reader.int64Number()
      }
    } catch (error) {
      return Either.left(`${type}: ${error instanceof ProtobufError ? error.message : String(error)}`)
    }
    return Either.right(message as MessageOf<S>)
  }
}

export const encodeAnnounce = (message: AdapterAnnounce) => encodeMessage(message, encoderOf(AnnounceSpec))
export const encodeRequest = (message: AdapterRequest) => encodeMessage(message, encoderOf(RequestSpec))
export const encodeChunk = (message: AdapterChunk) => encodeMessage(message, encoderOf(ChunkSpec))
export const encodeReport = (message: AdapterReport) => encodeMessage(message, encoderOf(ReportSpec))

/** Each decoder refuses what is not its message in one line: `AdapterChunk: truncated protobuf at byte 9: ...`. */
export const decodeAnnounce = decoderOf("AdapterAnnounce", AnnounceSpec)
export const decodeRequest = decoderOf("AdapterRequest", RequestSpec)
export const decodeChunk = decoderOf("AdapterChunk", ChunkSpec)
export const decodeReport = decoderOf("AdapterReport", ReportSpec)

// --- signatures -------------------------------------------------------------------------------------

const withDomain = (domain: string, body: Uint8Array) => {
  const tag = utf8(`edgenet.adapters.${domain}\n`)
  const joined = new Uint8Array(tag.length + body.length)
  joined.set(tag)
  joined.set(body, tag.length)
  return joined
}

/** The bytes an announcement's signature covers: the message without `signature`, after its domain tag. */
export const announceSigningBytes = (message: AdapterAnnounce) =>
  withDomain("AdapterAnnounce", encodeMessage(message, encoderOf(AnnounceSpec, "signature")))
export const reportSigningBytes = (message: AdapterReport) =>
  withDomain("AdapterReport", encodeMessage(message, encoderOf(ReportSpec, "signature")))

const hexToBytes = (hex: string) => Uint8Array.from(Buffer.from(hex, "hex"))

export const signAnnounce = (seed: Uint8Array, message: AdapterAnnounce): AdapterAnnounce => ({
  ...message,
  signature: hexToBytes(ed25519.sign(seed, announceSigningBytes(message)))
})
export const signReport = (seed: Uint8Array, message: AdapterReport): AdapterReport => ({
  ...message,
  signature: hexToBytes(ed25519.sign(seed, reportSigningBytes(message)))
})

export const announceSignedBy = (publicKeyHex: string, message: AdapterAnnounce) =>
  ed25519.verify(publicKeyHex, announceSigningBytes(message), toHex(message.signature))
/** A report is signed by the key its `reporter_id` names. */
export const reportSigned = (message: AdapterReport) =>
  ed25519.verify(message.reporterId, reportSigningBytes(message), toHex(message.signature))

// --- chunks -----------------------------------------------------------------------------------------

export const totalChunksOf = (size: number) => Math.max(1, Math.ceil(size / CHUNK_SIZE))

/** Chunk `index` of an adapter's bytes, with its hash. */
export const chunkOf = (adapterId: string, version: string, bytes: Uint8Array, index: number): AdapterChunk => {
  const data = bytes.subarray(index * CHUNK_SIZE, Math.min(bytes.length, (index + 1) * CHUNK_SIZE))
  return {
    adapterId,
    version,
    chunkIndex: index,
    totalChunks: totalChunksOf(bytes.length),
    data,
    chunkHash: sha256(data)
  }
}

/** Why a chunk answer is not the chunk asked for, or undefined when its data hashes to its `chunk_hash`. */
export const chunkProblem = (
  asked: { readonly adapterId: string; readonly version: string; readonly chunkIndex: number },
  totalChunks: number,
  chunk: AdapterChunk
): string | undefined => {
  if (chunk.totalChunks === 0) return "does not hold the adapter"
  if (chunk.adapterId !== asked.adapterId || chunk.version !== asked.version) {
    return `answered with ${chunk.adapterId}@${chunk.version}`
  }
  if (chunk.chunkIndex !== asked.chunkIndex) return `answered chunk ${chunk.chunkIndex} for chunk ${asked.chunkIndex}`
  if (chunk.totalChunks !== totalChunks) return `counts ${chunk.totalChunks} chunks, not ${totalChunks}`
  const expectedLength = asked.chunkIndex === totalChunks - 1 ? undefined : CHUNK_SIZE
  if (expectedLength !== undefined && chunk.data.length !== expectedLength) {
    return `chunk ${asked.chunkIndex} has ${chunk.data.length} bytes, not ${expectedLength}`
  }
  const hash = toHex(sha256(chunk.data))
  if (hash !== toHex(chunk.chunkHash)) {
    return `chunk ${asked.chunkIndex} hashes to ${hash.slice(0, 16)}…, not its chunk_hash ${
      toHex(chunk.chunkHash).slice(0, 16)
    }…`
  }
  return undefined
}
