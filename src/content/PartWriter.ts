/**
 * The `.part` file of one download: verified bytes land in it in batches, its state file names what is on
 * disk, and the whole-file hash (with the UnixFS layout) follows the verified prefix as it grows.
 */
import { Deferred, Duration, Effect, Queue } from "effect"
import * as crypto from "node:crypto"
import type * as fs from "node:fs"
import { writeFileAtomically } from "../node/AtomicFile.js"
import type { DownloadError, DownloadTarget } from "./Downloader.js"
import type { WorkUnit } from "./DownloadUnits.js"
import type { Coverage, PartialState } from "./PartialFile.js"
import { writeChunks } from "./PartialFile.js"
import type { UnixFsLayout } from "./UnixFs.js"
import { UnixFsBuilder } from "./UnixFs.js"

// Verified bytes are written in batches of about this size: few syscalls, little memory per worker.
export const WRITE_BATCH_BYTES = 1024 * 1024
const READ_BACK_BYTES = 4 * 1024 * 1024
// Verified progress is also saved every so many bytes or so often, not only when a unit finishes: a
// slow or capped pull killed midway keeps what it verified even if no unit had finished yet.
const PERSIST_EVERY_BYTES = 64 * 1024 * 1024
const PERSIST_EVERY_MS = 1_000

/** Bytes waiting to be written at `start` (with leaves: whole verified leaves only), without copying them. */
export class WriteBatch {
  chunks: Array<Uint8Array> = []
  bytes = 0
  leafEnd: number
  constructor(public start: number, nextLeaf: number) {
    this.leafEnd = nextLeaf
  }
  push(chunk: Uint8Array) {
    this.chunks.push(chunk)
    this.bytes += chunk.length
  }
}

/** How the download turns a failed step into its DownloadError. */
export interface Failing {
  readonly fail: (reason: string) => DownloadError
  readonly io: <A>(what: string, run: () => Promise<A>) => Effect.Effect<A, DownloadError>
}

export interface PartWriterOptions extends Failing {
  readonly target: DownloadTarget
  readonly handle: fs.promises.FileHandle
  readonly coverage: Coverage
  readonly stateFile: string
  /** Failed by the hasher and the persister when they fail, which ends the download. */
  readonly done: Deferred.Deferred<void, DownloadError>
}

export interface PartWriter {
  /** Writes a batch at its start and moves the unit past it; the batch is empty again afterwards. */
  readonly flush: (unit: WorkUnit, batch: WriteBatch) => Effect.Effect<void, DownloadError>
  /** Saves the state file, naming only bytes already on disk. */
  readonly persist: Effect.Effect<void, DownloadError>
  /** Wakes the persister (a unit finished). */
  readonly persistSoon: Effect.Effect<boolean>
  readonly persistOnWake: Effect.Effect<void>
  readonly persistPeriodically: Effect.Effect<never>
  /** Hashes the verified prefix as it grows, from the file when the writers did not do it in memory. */
  readonly hashPrefix: Effect.Effect<void>
  /** The whole file's SHA-256 once every byte is verified and on disk. */
  readonly sha256: Effect.Effect<string, DownloadError>
  /** The UnixFS layout built with the hash, when the target came without leaves. */
  readonly layout: () => UnixFsLayout | undefined
}

export const makePartWriter = (options: PartWriterOptions): Effect.Effect<PartWriter> =>
  Effect.gen(function*() {
    const { target, handle, coverage, stateFile, io, fail, done } = options
    const hashed = yield* Deferred.make<string, DownloadError>()
    const hasherWakeups = yield* Queue.sliding<void>(1)
    const persistWakeups = yield* Queue.sliding<void>(1)

    // The whole-file hash follows the verified prefix: from memory when a batch lands right at its end,
    // from the `.part` file (page cache) when other workers got there first, or an earlier run did.
    const prefix = {
      hash: crypto.createHash("sha256"),
      layout: target.leaves === undefined ? UnixFsBuilder.make() : undefined,
      hashedUpTo: 0,
      reading: false
    }
    const hashPrefix = Effect.gen(function*() {
      const buffer = Buffer.allocUnsafe(Math.min(READ_BACK_BYTES, Math.max(1, target.size)))
      for (;;) {
        for (
          let end = coverage.contiguousEnd(prefix.hashedUpTo);
          end > prefix.hashedUpTo;
          end = coverage.contiguousEnd(prefix.hashedUpTo)
        ) {
          const length = Math.min(end - prefix.hashedUpTo, buffer.length)
          prefix.reading = true
          const { bytesRead } = yield* io("cannot read the partial file", () =>
            handle.read(buffer, 0, length, prefix.hashedUpTo))
          prefix.reading = false
          if (bytesRead === 0) {
            return yield* Effect.fail(fail("the partial file is shorter than expected"))
          }
          prefix.hash.update(buffer.subarray(0, bytesRead))
          prefix.layout?.update(buffer.subarray(0, bytesRead))
          prefix.hashedUpTo += bytesRead
        }
        if (prefix.hashedUpTo === target.size) {
          return yield* Deferred.succeed(hashed, prefix.hash.digest("hex"))
        }
        yield* Queue.take(hasherWakeups)
      }
    }).pipe(Effect.catchAll((error) =>
      Deferred.fail(hashed, error).pipe(Effect.zipRight(Deferred.fail(done, error)))
    ))

    // The state names only bytes already on disk: the range list is taken before the fdatasync.
    const persist = Effect.gen(function*() {
      const state: PartialState = { format: 1, sha256: target.sha256, size: target.size, done: coverage.snapshot() }
      yield* io("cannot sync the partial file", () => handle.datasync())
      yield* io("cannot write the download state", () => writeFileAtomically(stateFile, JSON.stringify(state)))
    }).pipe(Effect.uninterruptible)
    const persistOnWake = Effect.forever(Queue.take(persistWakeups).pipe(Effect.zipRight(persist))).pipe(
      Effect.catchAll((error) => Deferred.fail(done, error))
    )
    let persistRequestedAt = coverage.bytes
    const requestPersist = () => {
      persistRequestedAt = coverage.bytes
      Queue.unsafeOffer(persistWakeups, undefined)
    }
    const persistPeriodically = Effect.forever(
      Effect.zipRight(
        Effect.sleep(Duration.millis(PERSIST_EVERY_MS)),
        Effect.sync(() => {
          if (coverage.bytes > persistRequestedAt) requestPersist()
        })
      )
    )

    const flush = (unit: WorkUnit, batch: WriteBatch): Effect.Effect<void, DownloadError> =>
      Effect.suspend(() => {
        if (batch.bytes === 0) return Effect.void
        const { start, chunks, bytes, leafEnd } = batch
        batch.start += bytes
        batch.chunks = []
        batch.bytes = 0
        return io("cannot write the partial file", () => writeChunks(handle, chunks, start)).pipe(Effect.map(() => {
          coverage.add(start, start + bytes)
          if (coverage.bytes - persistRequestedAt >= PERSIST_EVERY_BYTES) requestPersist()
          unit.position = start + bytes
          unit.nextLeaf = leafEnd
          if (!prefix.reading && start === prefix.hashedUpTo) {
            for (const chunk of chunks) {
              prefix.hash.update(chunk)
              prefix.layout?.update(chunk)
            }
            prefix.hashedUpTo += bytes
          }
          Queue.unsafeOffer(hasherWakeups, undefined)
        }))
      })

    return {
      flush,
      persist,
      persistSoon: Queue.offer(persistWakeups, undefined),
      persistOnWake,
      persistPeriodically,
      hashPrefix,
      sha256: Effect.suspend(() => {
        Queue.unsafeOffer(hasherWakeups, undefined)
        return Deferred.await(hashed)
      }),
      layout: () => prefix.layout?.finish()
    }
  })
