/**
 * Fetches one blob of known size and SHA-256 from several sources at once into `<sha256>.part`, checks
 * each piece as it arrives when the piece hashes are known, and resumes where a killed process stopped.
 */
import { Data, Deferred, Duration, Effect, Queue } from "effect"
import * as fs from "node:fs"
import * as ByteRate from "./ByteRate.js"
import { progressReporter } from "./DownloadProgress.js"
import type { WorkUnit } from "./DownloadUnits.js"
import { planUnits } from "./DownloadUnits.js"
import { makeWorker } from "./DownloadWorkers.js"
import { openPartial, partFileOf, removeQuietly, stateFileOf } from "./PartialFile.js"
import { makePartWriter, THREAD_HASH_BYTES } from "./PartWriter.js"
import { SourcePool } from "./SourcePool.js"
import type { BlobSource, RequestOptions } from "./Sources.js"
import { fetchUnit } from "./UnitFetch.js"
import type { UnixFsLayout } from "./UnixFs.js"

export interface Leaf {
  readonly cid: string
  readonly offset: number
  readonly length: number
  readonly sha256: Uint8Array
}

export interface DownloadTarget {
  /** 64 lowercase hex of the whole file. */
  readonly sha256: string
  readonly size: number
  /** For progress and errors, e.g. "tiny-lm@1.0.0/model.onnx". */
  readonly label: string
  /**
   * When known (from the IPFS DAG of the file, which the caller resolved and verified): the file's pieces
   * in order, each with its own sha256 — lets us verify every piece as it arrives, blame the source that
   * sent bad bytes, and resume piece by piece.
   */
  readonly leaves?: ReadonlyArray<Leaf>
}

export interface SourceStats {
  readonly name: string
  readonly kind: BlobSource["kind"]
  /** Bytes received from this source in this run, including any that failed verification. */
  readonly bytes: number
  readonly dropped: boolean
}

export interface Progress {
  readonly label: string
  readonly bytesDone: number
  readonly bytesTotal: number
  /** Received bytes per second, smoothed over the last second or so. */
  readonly bytesPerSecond: number
  /** Undefined while the rate is still unknown. */
  readonly etaSeconds: number | undefined
  readonly sources: ReadonlyArray<SourceStats>
}

export interface SourceDropped {
  readonly source: string
  readonly reason: string
}

export interface DownloadOptions {
  /** Where `<sha256>.part` (data, sparse) and `<sha256>.state.json` live. */
  readonly partialDir: string
  /** Concurrent part fetches, default 4. */
  readonly parallel?: number
  /** Total cap across all sources; undefined = unlimited. */
  readonly maxBytesPerSecond?: number
  /** Per request: no byte for this long = the source stalled; default 30000. */
  readonly timeoutMs?: number
  /** Failures in a row a source may have before it is dropped, default 3. */
  readonly retries?: number
  readonly onProgress?: (progress: Progress) => void
  readonly onSourceDropped?: (report: SourceDropped) => void
  /** Files of at least this many bytes are hashed on a thread of their own (default THREAD_HASH_BYTES, 32 MiB). */
  readonly hashThreadFrom?: number
}

export interface DownloadResult {
  /** The complete, verified `.part` file; the caller moves it into its store. */
  readonly path: string
  readonly sha256: string
  readonly size: number
  /** Bytes received from sources in this run. */
  readonly bytesFetched: number
  /** Bytes verified by an earlier run and not fetched again. */
  readonly bytesReused: number
  readonly sources: ReadonlyArray<SourceStats>
  readonly dropped: ReadonlyArray<SourceDropped>
  /**
   * The file's IPFS layout, built from the same pass as the whole-file hash when the target came
   * without leaves (a caller that had leaves has the layout already), so the store needs no re-read.
   */
  readonly layout?: UnixFsLayout
}

export class DownloadError
  extends Data.TaggedError("DownloadError")<{ readonly label: string; readonly reason: string }>
{
  override get message() {
    return `could not download ${this.label}: ${this.reason}`
  }
}

const PROGRESS_INTERVAL_MS = 100

const errorText = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause)).replace(/\s+/g, " ")

/** Downloads `target` from `sources` into `<partialDir>/<sha256>.part`; see the module comment. */
export const download = (
  target: DownloadTarget,
  sources: ReadonlyArray<BlobSource>,
  options: DownloadOptions
): Effect.Effect<DownloadResult, DownloadError> =>
  Effect.gen(function*() {
    const fail = (reason: string) => new DownloadError({ label: target.label, reason: reason.replace(/\s+/g, " ") })
    const io = <A>(what: string, run: () => Promise<A>) =>
      Effect.tryPromise({ try: run, catch: (cause) => fail(`${what}: ${errorText(cause)}`) })
    const problem = targetProblem(target)
    if (problem !== undefined) return yield* Effect.fail(fail(problem))

    const leaves = target.leaves
    // Whole failures in a row: `retries` 2.5 drops a source at its third, as 2 does.
    const retries = Math.floor(Math.max(0, options.retries ?? 3))
    const pool = yield* SourcePool.make(sources, leaves, retries, options.onSourceDropped)
    if (pool.slots.length === 0) {
      return yield* Effect.fail(fail(
        sources.length === 0
          ? "no sources"
          : "no source can serve it (IPFS gateways need the file's piece list)"
      ))
    }

    const partFile = partFileOf(options.partialDir, target.sha256)
    const stateFile = stateFileOf(options.partialDir, target.sha256)
    const parallel = Math.max(1, Math.floor(options.parallel ?? 4))
    const requestOptions: RequestOptions = { idleTimeoutMs: options.timeoutMs ?? 30_000 }
    const limiter = yield* ByteRate.make(options.maxBytesPerSecond)
    let bytesReused = 0
    let discardPartial = false

    const run = Effect.gen(function*() {
      yield* io("cannot create the partial directory", () => fs.promises.mkdir(options.partialDir, { recursive: true }))
      const { handle, coverage } = yield* Effect.acquireRelease(
        io("cannot open the partial file", () => openPartial(target, partFile, stateFile)),
        ({ handle }) => Effect.promise(() => handle.close().catch(() => undefined))
      )
      bytesReused = coverage.bytes
      const units = planUnits(target, coverage, parallel)
      const done = yield* Deferred.make<void, DownloadError>()
      const part = yield* makePartWriter({
        target,
        handle,
        partFile,
        coverage,
        stateFile,
        io,
        fail,
        done,
        hashThreadFrom: options.hashThreadFrom ?? THREAD_HASH_BYTES
      })
      const queue = yield* Queue.unbounded<WorkUnit>()
      yield* Queue.offerAll(queue, units)
      const worker = yield* makeWorker({
        pool,
        queue,
        units: units.length,
        done,
        fetchUnit: (unit, slot) =>
          fetchUnit(
            { leaves, requestOptions, limiter, part },
            unit,
            slot.source,
            (bytes) => pool.received(slot, bytes)
          ),
        unitFinished: part.persistSoon,
        fail
      })
      const report = progressReporter(target, coverage, pool, options.onProgress)

      // Finalizers run in reverse: workers stop first, then the state is saved, then the file closes.
      // A failed run with nothing verified leaves nothing behind; one with progress keeps it for the next.
      yield* Effect.addFinalizer((exit) =>
        exit._tag === "Success" ? Effect.void : Effect.suspend(() => {
          if (coverage.bytes === 0) discardPartial = true
          return Effect.ignore(part.persist)
        })
      )
      yield* Effect.forkScoped(part.persistOnWake)
      yield* Effect.forkScoped(part.persistPeriodically)
      yield* Effect.forkScoped(part.hashPrefix)
      if (options.onProgress !== undefined) {
        yield* Effect.forkScoped(
          Effect.forever(Effect.zipRight(Effect.sleep(Duration.millis(PROGRESS_INTERVAL_MS)), report(false)))
        )
      }
      for (let index = 0; index < Math.min(parallel, units.length); index++) yield* Effect.forkScoped(worker)
      if (units.length === 0) yield* Deferred.succeed(done, undefined)

      yield* Deferred.await(done)
      const sha256 = yield* part.sha256
      const { size } = yield* io("cannot read the partial file", () => handle.stat())
      if (sha256 !== target.sha256 || size !== target.size) {
        discardPartial = true
        const used = pool.slots.filter((slot) => slot.bytes > 0).map((slot) => slot.source.name)
        if (bytesReused > 0) used.push("an earlier run")
        return yield* Effect.fail(fail(
          `the received file has SHA-256 ${sha256} and ${size} bytes, expected ${target.sha256} and ${target.size} ` +
            `(bytes from ${used.join(", ")}); the partial download was discarded`
        ))
      }
      if (options.onProgress !== undefined) yield* report(true)
      return { sha256, layout: part.layout() }
    })

    const { layout, sha256 } = yield* Effect.scoped(run).pipe(
      Effect.tapError(() => discardPartial ? Effect.promise(() => removeQuietly(partFile, stateFile)) : Effect.void)
    )
    yield* Effect.promise(() => removeQuietly(stateFile))
    return {
      path: partFile,
      sha256,
      size: target.size,
      bytesFetched: pool.bytesFetched,
      bytesReused,
      sources: pool.stats(),
      dropped: pool.dropped,
      ...(layout === undefined ? {} : { layout })
    } satisfies DownloadResult
  }).pipe(Effect.withSpan("Downloader.download", { attributes: { label: target.label, size: target.size } }))

const targetProblem = (target: DownloadTarget): string | undefined => {
  if (!/^[0-9a-f]{64}$/.test(target.sha256)) return "the expected SHA-256 is not 64 lowercase hex characters"
  if (!Number.isSafeInteger(target.size) || target.size < 0) {
    return `the expected size ${target.size} is not a byte count`
  }
  if (target.leaves === undefined) return undefined
  let offset = 0
  for (const [index, leaf] of target.leaves.entries()) {
    if (leaf.offset !== offset || !(leaf.length > 0) || leaf.sha256.length !== 32) {
      return `piece ${index} of the piece list is malformed`
    }
    offset += leaf.length
  }
  return offset === target.size ? undefined : `the piece list covers ${offset} bytes, not ${target.size}`
}

export { partFileOf, stateFileOf } from "./PartialFile.js"
