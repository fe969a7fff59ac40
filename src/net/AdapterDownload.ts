/**
 * An adapter pulled chunk by chunk from every peer that holds it (model-distribution seed 9.2): the
 * chunks are spread over the holders; a chunk that does not hash to its `chunk_hash` is refused, its
 * peer takes a strike, and the chunk is asked of another holder. The whole is then checked artifact by
 * artifact against the digests the publisher signed; should an artifact not match (a peer that sent
 * wrong data under a matching hash), its chunks are asked again of other holders and the peers whose
 * copies differed take the strikes. Nothing here stores anything: the caller stores what passed.
 */
import { Clock, Effect, Either, Schema } from "effect"
import type { ModelManifest } from "../content/Manifest.js"
import { sha256, toHex } from "../content/Sha256.js"
import * as Wire from "./AdapterWire.js"

export const RefusedChunk = Schema.Struct({ peerId: Schema.String, chunk: Schema.Number, reason: Schema.String })
type Refused = typeof RefusedChunk.Type

/** The artifacts in the order their bytes follow one another on the wire: by artifact name. */
export const bundleLayout = (manifest: ModelManifest) => {
  let offset = 0
  return Object.keys(manifest.artifacts).sort().map((name) => {
    const artifact = manifest.artifacts[name]!
    const part = { name, offset, size: artifact.size, sha256: artifact.sha256 }
    offset += artifact.size
    return part
  })
}

/** Where chunks come from, and the standing of each holder (a struck peer is asked for nothing). */
export interface ChunkSource {
  /** This node's peer id, named in every request. */
  readonly self: string
  readonly request: (peerId: string, bytes: Uint8Array) => Effect.Effect<Uint8Array, string>
  readonly struck: (peerId: string) => boolean
  readonly strike: (peerId: string) => void
}

interface Piece {
  readonly data: Uint8Array
  readonly peerId: string
}

/** Fetches the chunks at `indices`, each from a holder not in its `tried` set, spreading them over the holders. */
const fetchChunks = (
  manifest: ModelManifest,
  holders: ReadonlyArray<string>,
  indices: ReadonlyArray<number>,
  tried: Array<Set<string>>,
  refused: Array<Refused>,
  source: ChunkSource
) => {
  const { id, version } = manifest
  const total = Wire.totalChunksOf(bundleLayout(manifest).reduce((sum, part) => sum + part.size, 0))
  return Effect.forEach(indices, (index) =>
    Effect.gen(function*() {
      for (let attempt = 0; attempt < holders.length; attempt++) {
        const peerId = holders[(index + attempt) % holders.length]!
        if (tried[index]!.has(peerId) || source.struck(peerId)) continue
        tried[index]!.add(peerId)
        const request = Wire.encodeRequest({
          adapterId: id,
          requesterId: source.self,
          timestamp: yield* Clock.currentTimeMillis,
          chunkIndex: index,
          version
        })
        const answer = yield* Effect.either(source.request(peerId, request))
        const problem = Either.isLeft(answer)
          ? answer.left
          : Either.match(Wire.decodeChunk(answer.right), {
            onLeft: (line) => line,
            onRight: (chunk) =>
              Wire.chunkProblem({ adapterId: id, version, chunkIndex: index }, total, chunk) ??
                ({ data: chunk.data, peerId } satisfies Piece)
          })
        if (typeof problem !== "string") return problem
        refused.push({ peerId, chunk: index, reason: problem })
        source.strike(peerId)
      }
      return yield* Effect.fail(`no holder served chunk ${index} of ${id}@${version} intact`)
    }), { concurrency: Math.min(8, 2 * holders.length) })
}

/** The adapter's bytes (its artifacts in `bundleLayout` order), each chunk's holder, and what was refused. */
export const downloadBundle = (manifest: ModelManifest, holders: ReadonlyArray<string>, source: ChunkSource) =>
  Effect.gen(function*() {
    const layout = bundleLayout(manifest)
    const size = layout.reduce((sum, part) => sum + part.size, 0)
    const total = Wire.totalChunksOf(size)
    const tried = Array.from({ length: total }, () => new Set<string>())
    const refused: Array<Refused> = []
    const pieces: Array<Piece> = [
      ...(yield* fetchChunks(manifest, holders, [...Array(total).keys()], tried, refused, source))
    ]
    const bundle = new Uint8Array(size)
    pieces.forEach((piece, index) => bundle.set(piece.data, index * Wire.CHUNK_SIZE))
    // The whole, artifact by artifact, against the digests the publisher signed.
    for (let round = 0;; round++) {
      const bad = layout.filter((part) =>
        toHex(sha256(bundle.subarray(part.offset, part.offset + part.size))) !== part.sha256
      )
      if (bad.length === 0) break
      if (round === holders.length) {
        return yield* Effect.fail(
          `${bad.map((part) => part.name).join(", ")} of ${manifest.id} does not match its signed digest`
        )
      }
      const indices = [
        ...new Set(bad.flatMap((part) => {
          const first = Math.floor(part.offset / Wire.CHUNK_SIZE)
          const last = Math.floor(Math.max(part.offset, part.offset + part.size - 1) / Wire.CHUNK_SIZE)
          return Array.from({ length: last - first + 1 }, (_, k) => first + k)
        }))
      ]
      const again = yield* fetchChunks(manifest, holders, indices, tried, refused, source)
      again.forEach((piece, k) => {
        const index = indices[k]!
        const before = pieces[index]!
        if (toHex(sha256(before.data)) === toHex(sha256(piece.data))) return
        refused.push({ peerId: before.peerId, chunk: index, reason: "differs from another holder's copy" })
        source.strike(before.peerId)
        pieces[index] = piece
        bundle.set(piece.data, index * Wire.CHUNK_SIZE)
      })
    }
    return { bundle, pieces, refused }
  })
