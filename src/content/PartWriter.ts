/**
 * The `.part` file of one download: verified bytes land in it in batches, its state file names what is on
 * disk, and the whole-file hash (with the UnixFS layout) follows the verified prefix as it grows: on this
 * thread for small files, on a thread of its own (PrefixHashThread.ts) from THREAD_HASH_BYTES up.
 */
import { Deferred, Duration, Effect, Queue } from "effect"
import * as crypto from "node:crypto"
import type * as fs from "node:fs"
import type { Worker } from "node:worker_threads"
import { writeFileAtomically } from "../node/AtomicFile.js"
import { moduleWorker } from "../node/ModuleWorker.js"
import { giveBack } from "./ChunkPool.js"
import type { DownloadError, DownloadTarget } from "./Downloader.js"
import type { WorkUnit } from "./DownloadUnits.js"
import type { Coverage, PartialState } from "./PartialFile.js"
import { writeChunks } from "./PartialFile.js"
import type { PrefixHashData, PrefixHashMessage, PrefixHashReply } from "./PrefixHashThread.js"
import type { UnixFsLayout } from "./UnixFs.js"
import { UnixFsBuilder } from "./UnixFs.js"

// Verified bytes are written in batches of about this size: few syscalls, little memory per worker.
export const WRITE_BATCH_BYTES = 1024 * 1024
const READ_BACK_BYTES = 4 * 1024 * 1024
// Verified progress is also saved every so many bytes or so often, not only when a unit finishes: a
// slow or capped pull killed midway keeps what it verified even if no unit had finished yet.
const PERSIST_EVERY_BYTES = 64 * 1024 * 1024
const PERSIST_EVERY_MS = 1_000
/**
 * From this size on, the whole-file hash and the layout are computed on a thread of their own: past a
 * few tens of megabytes, two passes of SHA-256 cost the main thread more than receiving and writing
 * the bytes, and the thread's start (tens of milliseconds) no longer shows.
 */
export const THREAD_HASH_BYTES = 32 * 1024 * 1024

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
  /** The `.part` file's path, which the hashing thread opens for reading. */
  readonly partFile: string
  /** Targets of at least this many bytes are hashed on a thread of their own. */
  readonly hashThreadFrom: number
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
    const { coverage, done, fail, handle, io, partFile, stateFile, target } = options
    const hashed = yield* Deferred.make<string, DownloadError>()
    const hasherWakeups = yield* Queue.sliding<void>(1)
    const persistWakeups = yield* Queue.sliding<void>(1)

    const onThread = target.size >= options.hashThreadFrom
    // The whole-file hash follows the verified prefix: from memory when a batch lands right at its end,
    // from the `.part` file (page cache) when other workers got there first, or an earlier run did.
    const prefix = {
      hash: crypto.createHash("sha256"),
      layout: target.leaves === undefined && !onThread ? UnixFsBuilder.make() : undefined,
      hashedUpTo: 0,
      reading: false
    }
    const thread: { worker: Worker | undefined; layout: UnixFsLayout | undefined } = {
      worker: undefined,
      layout: undefined
    }
    const tellThread = () => {
      const message: PrefixHashMessage = { verifiedUpTo: coverage.contiguousEnd(0) }
      thread.worker?.postMessage(message)
    }
    const hashOnThread = Effect.scoped(Effect.gen(function*() {
      const worker = yield* Effect.acquireRelease(
        Effect.sync(() => {
          const workerData: PrefixHashData = { file: partFile, size: target.size, layout: target.leaves === undefined }
          return moduleWorker(import.meta.url, "./PrefixHashThread", { workerData })
        }),
        (worker) => Effect.promise(() => worker.terminate())
      )
      const reply = Effect.async<PrefixHashReply>((resume) => {
        worker.once("message", (message: PrefixHashReply) => resume(Effect.succeed(message)))
        worker.once("error", (error) => resume(Effect.succeed({ error: error.message })))
        worker.once("exit", (code) => resume(Effect.succeed({ error: `the hashing thread exited with ${code}` })))
      })
      thread.worker = worker
      // What an earlier run left verified is hashed first; each write after this moves the end on.
      tellThread()
      const answer = yield* reply
      thread.worker = undefined
      if ("error" in answer) return yield* Effect.fail(fail(`cannot hash the partial file: ${answer.error}`))
      thread.layout = answer.layout
      return yield* Deferred.succeed(hashed, answer.sha256)
    }))

    const hashOnThisThread = Effect.gen(function*() {
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
    })
    // A hasher that fails fails the hash and the download with it.
    const hashPrefix = (onThread ? hashOnThread : hashOnThisThread).pipe(Effect.catchAll((error) =>
      Deferred.fail(hashed, error).pipe(Effect.zipRight(Deferred.fail(done, error)))
    ))

    // The state names only bytes already on disk: the range list is taken before the fdatasync.
    const persist = Effect.gen(function*() {
      const state: PartialState = { format: 1, sha256: target.sha256, size: target.size, done: coverage.snapshot() }
      yield* io("cannot sync the partial file", () =>
        handle.datasync())
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
          if (onThread) tellThread()
          else if (!prefix.reading && start === prefix.hashedUpTo) {
            for (const chunk of chunks) {
              prefix.hash.update(chunk)
              prefix.layout?.update(chunk)
            }
            prefix.hashedUpTo += bytes
          }
          // On disk (and hashed, if that was done from memory): the download's buffers may be reused.
          for (const chunk of chunks) giveBack(chunk)
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
      layout: () => (onThread ? thread.layout : prefix.layout?.finish())
    }
  })
