/**
 * Fetches one work unit from one source, by byte range or block by block, checking each piece against
 * its hash as it arrives when the pieces are known; verified bytes are kept whatever ends the attempt.
 */
import { Chunk, Data, Effect, Stream } from "effect"
import * as crypto from "node:crypto"
import * as ByteRate from "./ByteRate.js"
import type { DownloadError, Leaf } from "./Downloader.js"
import type { WorkUnit } from "./DownloadUnits.js"
import type { PartWriter } from "./PartWriter.js"
import { WRITE_BATCH_BYTES, WriteBatch } from "./PartWriter.js"
import type { BlobSource, RequestOptions } from "./Sources.js"
import { SourceError } from "./Sources.js"

export class BadPiece extends Data.TaggedError("BadPiece")<{ readonly index: number; readonly offset: number }> {
  override get message() {
    return `sent bytes that do not match piece ${this.index} (offset ${this.offset})`
  }
}

export interface UnitFetchOptions {
  readonly leaves: ReadonlyArray<Leaf> | undefined
  readonly requestOptions: RequestOptions
  readonly limiter: ByteRate.ByteRate
  readonly part: PartWriter
}

const sameDigest = (left: Buffer, right: Uint8Array) => left.length === right.length && left.equals(right)

/** Fetches `unit` from `source` into the part file; `received` counts every byte that arrives. */
export const fetchUnit = (
  options: UnitFetchOptions,
  unit: WorkUnit,
  source: BlobSource,
  received: (bytes: number) => void
): Effect.Effect<void, BadPiece | DownloadError | SourceError> => {
  const { fetchRange, fetchBlock } = source
  if (fetchRange !== undefined) return fetchByRange(options, unit, source, fetchRange, received)
  return fetchByBlocks(options, unit, fetchBlock!, options.leaves!, received)
}

const fetchByRange = (
  { leaves, requestOptions, limiter, part }: UnitFetchOptions,
  unit: WorkUnit,
  source: BlobSource,
  fetchRange: NonNullable<BlobSource["fetchRange"]>,
  received: (bytes: number) => void
) =>
  Effect.suspend(() => {
    const batch = new WriteBatch(unit.position, unit.nextLeaf)
    let leafIndex = unit.nextLeaf
    let leafHash = crypto.createHash("sha256")
    let leafChunks: Array<Uint8Array> = []
    let leafFilled = 0
    let expected = unit.end - unit.position
    const acceptOne = (chunk: Uint8Array): BadPiece | SourceError | undefined => {
      received(chunk.length)
      expected -= chunk.length
      if (expected < 0) return new SourceError({ source: source.name, reason: "sent more bytes than asked for" })
      if (leaves === undefined) return void batch.push(chunk)
      for (let rest = chunk; rest.length > 0;) {
        const leaf = leaves[leafIndex]!
        const piece = rest.subarray(0, Math.min(leaf.length - leafFilled, rest.length))
        leafHash.update(piece)
        leafChunks.push(piece)
        leafFilled += piece.length
        rest = rest.subarray(piece.length)
        if (leafFilled === leaf.length) {
          if (!sameDigest(leafHash.digest(), leaf.sha256)) {
            return new BadPiece({ index: leafIndex, offset: leaf.offset })
          }
          for (const verified of leafChunks) batch.push(verified)
          batch.leafEnd = ++leafIndex
          leafHash = crypto.createHash("sha256")
          leafChunks = []
          leafFilled = 0
        }
      }
    }
    // Plain loops per batch of chunks; one effect only when there is something to wait for.
    const accept = (chunks: Chunk.Chunk<Uint8Array>): Effect.Effect<void, BadPiece | DownloadError | SourceError> => {
      for (const chunk of Chunk.toReadonlyArray(chunks)) {
        const problem = acceptOne(chunk)
        if (problem !== undefined) return Effect.fail(problem)
      }
      return batch.bytes >= WRITE_BATCH_BYTES ? part.flush(unit, batch) : Effect.void
    }
    const onChunks = limiter === ByteRate.unlimited ? accept : (chunks: Chunk.Chunk<Uint8Array>) => {
      let bytes = 0
      for (const chunk of Chunk.toReadonlyArray(chunks)) bytes += chunk.length
      return Effect.zipRight(limiter.take(bytes), Effect.suspend(() => accept(chunks)))
    }
    return Stream.runForEachChunk(fetchRange(unit.position, unit.end, requestOptions), onChunks).pipe(
      Effect.zipRight(part.flush(unit, batch)),
      Effect.filterOrFail(
        () => unit.position === unit.end,
        () =>
          new SourceError({
            source: source.name,
            reason: `ended ${unit.end - unit.position} bytes short of the range asked for`
          })
      ),
      // Verified bytes already received are kept whatever ends the attempt.
      Effect.ensuring(Effect.ignore(part.flush(unit, batch)))
    )
  })

const fetchByBlocks = (
  { requestOptions, limiter, part }: UnitFetchOptions,
  unit: WorkUnit,
  fetchBlock: NonNullable<BlobSource["fetchBlock"]>,
  pieces: ReadonlyArray<Leaf>,
  received: (bytes: number) => void
) =>
  Effect.suspend(() => {
    const batch = new WriteBatch(unit.position, unit.nextLeaf)
    return Effect.gen(function*() {
      for (let index = unit.nextLeaf; index < unit.leafEnd; index++) {
        const leaf = pieces[index]!
        const block = yield* fetchBlock(leaf.cid, requestOptions)
        yield* limiter.take(block.length)
        received(block.length)
        if (
          block.length !== leaf.length || !sameDigest(crypto.createHash("sha256").update(block).digest(), leaf.sha256)
        ) {
          return yield* Effect.fail(new BadPiece({ index, offset: leaf.offset }))
        }
        batch.push(block)
        batch.leafEnd = index + 1
        if (batch.bytes >= WRITE_BATCH_BYTES) yield* part.flush(unit, batch)
      }
      yield* part.flush(unit, batch)
    }).pipe(Effect.ensuring(Effect.ignore(part.flush(unit, batch))))
  })
