/**
 * Fetches one blob of known size and SHA-256 from several sources at once into `<sha256>.part`, checks
 * each piece as it arrives when the piece hashes are known, and resumes where a killed process stopped.
 */
import { Cause, Chunk, Data, Deferred, Duration, Effect, Queue, Random, Stream } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import { writeFileAtomically } from "../node/AtomicFile.js"
import { Coverage, openPartial, partFileOf, removeQuietly, stateFileOf, writeChunks } from "./PartialFile.js"
import type { PartialState } from "./PartialFile.js"
import * as RateLimiter from "./RateLimiter.js"
import type { BlobSource, RequestOptions } from "./Sources.js"
import { SourceError } from "./Sources.js"
import type { UnixFsLayout } from "./UnixFs.js"
import { UnixFsBuilder } from "./UnixFs.js"

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

export class DownloadError extends Data.TaggedError("DownloadError")<{ readonly label: string; readonly reason: string }> {
  override get message() {
    return `could not download ${this.label}: ${this.reason}`
  }
}

const MAX_UNIT_BYTES = 16 * 1024 * 1024
const MIN_UNIT_BYTES = 64 * 1024
// Verified bytes are written in batches of about this size: few syscalls, little memory per worker.
const WRITE_BATCH_BYTES = 1024 * 1024
const READ_BACK_BYTES = 4 * 1024 * 1024
const BACKOFF_BASE_MS = 100
const BACKOFF_MAX_MS = 5_000
const PROGRESS_INTERVAL_MS = 100
// Verified progress is also saved every so many bytes or so often, not only when a unit finishes: a
// slow or capped pull killed midway keeps what it verified even if no unit had finished yet.
const PERSIST_EVERY_BYTES = 64 * 1024 * 1024
const PERSIST_EVERY_MS = 1_000

class BadPiece extends Data.TaggedError("BadPiece")<{ readonly index: number; readonly offset: number }> {
  override get message() {
    return `sent bytes that do not match piece ${this.index} (offset ${this.offset})`
  }
}

/** A run of the file one worker fetches from one source; `position` moves as its bytes are written. */
interface WorkUnit {
  readonly end: number
  position: number
  /** With leaves: the next leaf to fetch, and one past the unit's last. */
  nextLeaf: number
  readonly leafEnd: number
}

interface SourceSlot {
  readonly source: BlobSource
  active: number
  failures: number
  bytes: number
  dropped: boolean
}

/** Bytes waiting to be written at `start` (with leaves: whole verified leaves only), without copying them. */
class WriteBatch {
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

const errorText = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause)).replace(/\s+/g, " ")
const sameDigest = (left: Buffer, right: Uint8Array) => left.length === right.length && left.equals(right)

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
    const slots: Array<SourceSlot> = sources
      .filter((source) => source.fetchRange !== undefined || (leaves !== undefined && source.fetchBlock !== undefined))
      .map((source) => ({ source, active: 0, failures: 0, bytes: 0, dropped: false }))
    if (slots.length === 0) {
      return yield* Effect.fail(fail(sources.length === 0
        ? "no sources"
        : "no source can serve it (IPFS gateways need the file's piece list)"))
    }

    const partFile = partFileOf(options.partialDir, target.sha256)
    const stateFile = stateFileOf(options.partialDir, target.sha256)
    const parallel = Math.max(1, Math.floor(options.parallel ?? 4))
    const retries = Math.max(0, options.retries ?? 3)
    const requestOptions: RequestOptions = { idleTimeoutMs: options.timeoutMs ?? 30_000 }
    const limiter = yield* RateLimiter.make(options.maxBytesPerSecond)
    const dropped: Array<SourceDropped> = []
    let bytesFetched = 0
    let bytesReused = 0
    let discardPartial = false

    const sourceStats = (): ReadonlyArray<SourceStats> =>
      slots.map((slot) => ({ name: slot.source.name, kind: slot.source.kind, bytes: slot.bytes, dropped: slot.dropped }))

    const run = Effect.gen(function*() {
      yield* io("cannot create the partial directory", () => fs.promises.mkdir(options.partialDir, { recursive: true }))
      const { handle, coverage } = yield* Effect.acquireRelease(
        io("cannot open the partial file", () => openPartial(target, partFile, stateFile)),
        ({ handle }) => Effect.promise(() => handle.close().catch(() => undefined))
      )
      bytesReused = coverage.bytes
      const units = planUnits(target, coverage, parallel)
      let unitsLeft = units.length
      const done = yield* Deferred.make<void, DownloadError>()
      const hashed = yield* Deferred.make<string, DownloadError>()
      const queue = yield* Queue.unbounded<WorkUnit>()
      yield* Queue.offerAll(queue, units)
      const hasherWakeups = yield* Queue.sliding<void>(1)
      const persistWakeups = yield* Queue.sliding<void>(1)
      const attemptEnded = yield* Queue.sliding<void>(1)

      // The whole-file hash follows the verified prefix: from memory when a batch lands right at its end,
      // from the `.part` file (page cache) when other workers got there first, or an earlier run did.
      const prefix = { hash: crypto.createHash("sha256"), layout: target.leaves === undefined ? UnixFsBuilder.make() : undefined, hashedUpTo: 0, reading: false }
      const hashPrefix = Effect.gen(function*() {
        const buffer = Buffer.allocUnsafe(Math.min(READ_BACK_BYTES, Math.max(1, target.size)))
        for (;;) {
          for (let end = coverage.contiguousEnd(prefix.hashedUpTo); end > prefix.hashedUpTo; end = coverage.contiguousEnd(prefix.hashedUpTo)) {
            const length = Math.min(end - prefix.hashedUpTo, buffer.length)
            prefix.reading = true
            const { bytesRead } = yield* io("cannot read the partial file", () => handle.read(buffer, 0, length, prefix.hashedUpTo))
            prefix.reading = false
            if (bytesRead === 0) return yield* Effect.fail(fail("the partial file is shorter than expected"))
            prefix.hash.update(buffer.subarray(0, bytesRead))
            prefix.layout?.update(buffer.subarray(0, bytesRead))
            prefix.hashedUpTo += bytesRead
          }
          if (prefix.hashedUpTo === target.size) return yield* Deferred.succeed(hashed, prefix.hash.digest("hex"))
          yield* Queue.take(hasherWakeups)
        }
      }).pipe(Effect.catchAll((error) => Deferred.fail(hashed, error).pipe(Effect.zipRight(Deferred.fail(done, error)))))

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
        Effect.zipRight(Effect.sleep(Duration.millis(PERSIST_EVERY_MS)), Effect.sync(() => {
          if (coverage.bytes > persistRequestedAt) requestPersist()
        }))
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

      const received = (slot: SourceSlot, bytes: number) => {
        slot.bytes += bytes
        bytesFetched += bytes
      }

      const fetchByRange = (unit: WorkUnit, slot: SourceSlot, fetchRange: NonNullable<BlobSource["fetchRange"]>) =>
        Effect.suspend(() => {
          const batch = new WriteBatch(unit.position, unit.nextLeaf)
          let leafIndex = unit.nextLeaf
          let leafHash = crypto.createHash("sha256")
          let leafChunks: Array<Uint8Array> = []
          let leafFilled = 0
          let expected = unit.end - unit.position
          const acceptOne = (chunk: Uint8Array): BadPiece | SourceError | undefined => {
            received(slot, chunk.length)
            expected -= chunk.length
            if (expected < 0) return new SourceError({ source: slot.source.name, reason: "sent more bytes than asked for" })
            if (leaves === undefined) return void batch.push(chunk)
            for (let rest = chunk; rest.length > 0;) {
              const leaf = leaves[leafIndex]!
              const piece = rest.subarray(0, Math.min(leaf.length - leafFilled, rest.length))
              leafHash.update(piece)
              leafChunks.push(piece)
              leafFilled += piece.length
              rest = rest.subarray(piece.length)
              if (leafFilled === leaf.length) {
                if (!sameDigest(leafHash.digest(), leaf.sha256)) return new BadPiece({ index: leafIndex, offset: leaf.offset })
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
            return batch.bytes >= WRITE_BATCH_BYTES ? flush(unit, batch) : Effect.void
          }
          const onChunks = limiter === RateLimiter.unlimited ? accept : (chunks: Chunk.Chunk<Uint8Array>) => {
            let bytes = 0
            for (const chunk of Chunk.toReadonlyArray(chunks)) bytes += chunk.length
            return Effect.zipRight(limiter.take(bytes), Effect.suspend(() => accept(chunks)))
          }
          return Stream.runForEachChunk(fetchRange(unit.position, unit.end, requestOptions), onChunks).pipe(
            Effect.zipRight(flush(unit, batch)),
            Effect.filterOrFail(
              () => unit.position === unit.end,
              () => new SourceError({ source: slot.source.name, reason: `ended ${unit.end - unit.position} bytes short of the range asked for` })
            ),
            // Verified bytes already received are kept whatever ends the attempt.
            Effect.ensuring(Effect.ignore(flush(unit, batch)))
          )
        })

      const fetchByBlocks = (unit: WorkUnit, slot: SourceSlot, fetchBlock: NonNullable<BlobSource["fetchBlock"]>, pieces: ReadonlyArray<Leaf>) =>
        Effect.suspend(() => {
          const batch = new WriteBatch(unit.position, unit.nextLeaf)
          return Effect.gen(function*() {
            for (let index = unit.nextLeaf; index < unit.leafEnd; index++) {
              const leaf = pieces[index]!
              const block = yield* fetchBlock(leaf.cid, requestOptions)
              yield* limiter.take(block.length)
              received(slot, block.length)
              if (block.length !== leaf.length || !sameDigest(crypto.createHash("sha256").update(block).digest(), leaf.sha256)) {
                return yield* Effect.fail(new BadPiece({ index, offset: leaf.offset }))
              }
              batch.push(block)
              batch.leafEnd = index + 1
              if (batch.bytes >= WRITE_BATCH_BYTES) yield* flush(unit, batch)
            }
            yield* flush(unit, batch)
          }).pipe(Effect.ensuring(Effect.ignore(flush(unit, batch))))
        })

      const fetchUnit = (unit: WorkUnit, slot: SourceSlot) => {
        const { fetchRange, fetchBlock } = slot.source
        if (fetchRange !== undefined) return fetchByRange(unit, slot, fetchRange)
        return fetchByBlocks(unit, slot, fetchBlock!, leaves!)
      }

      const dropSource = (slot: SourceSlot, reason: string) =>
        Effect.sync(() => {
          if (slot.dropped) return
          slot.dropped = true
          const report = { source: slot.source.name, reason: reason.replace(/\s+/g, " ") }
          dropped.push(report)
          try {
            options.onSourceDropped?.(report)
          } catch {
            // A caller's callback must not take the download down with it.
          }
        })

      // Least loaded first; ties go round-robin so that equal sources share the file.
      let nextTurn = 0
      const pickSource = (): SourceSlot | undefined => {
        let best: SourceSlot | undefined
        for (let offset = 0; offset < slots.length; offset++) {
          const slot = slots[(nextTurn + offset) % slots.length]!
          if (!slot.dropped && (best === undefined || slot.active < best.active)) best = slot
        }
        nextTurn++
        return best
      }

      const unitFinished = Effect.suspend(() => {
        unitsLeft--
        if (unitsLeft === 0) return Deferred.succeed(done, undefined)
        return Queue.offer(persistWakeups, undefined)
      })

      const runUnit = (unit: WorkUnit): Effect.Effect<void, DownloadError> =>
        Effect.gen(function*() {
          const slot = pickSource()
          if (slot === undefined && slots.some((candidate) => candidate.active > 0)) {
            // An attempt still under way on a dropped source may yet finish its unit, or keep what it got.
            yield* Queue.take(attemptEnded)
            return yield* Effect.asVoid(Queue.offer(queue, unit))
          }
          if (slot === undefined) {
            const failures = dropped.map((report) => `${report.source}: ${report.reason}`).join("; ")
            return yield* Effect.fail(fail(`every source failed (${failures})`))
          }
          slot.active++
          yield* Effect.gen(function*() {
            for (;;) {
              const positionBefore = unit.position
              const attempt = yield* Effect.either(fetchUnit(unit, slot))
              if (attempt._tag === "Right") {
                slot.failures = 0
                return yield* unitFinished
              }
              const error = attempt.left
              if (error._tag === "DownloadError") return yield* Effect.fail(error)
              if (error._tag === "BadPiece") yield* dropSource(slot, error.message)
              else if (!slot.dropped) {
                // Failures in a row without progress count; a source that moves forward may keep trying.
                slot.failures = unit.position > positionBefore ? 1 : slot.failures + 1
                if (slot.failures > retries) yield* dropSource(slot, (error as SourceError).reason)
                else yield* Effect.sleep(yield* backoff(slot.failures))
              }
              if (slot.dropped) return yield* Effect.asVoid(Queue.offer(queue, unit))
            }
          }).pipe(Effect.ensuring(Effect.sync(() => {
            slot.active--
            Queue.unsafeOffer(attemptEnded, undefined)
          })))
        })

      const worker = Effect.forever(Effect.flatMap(Queue.take(queue), runUnit)).pipe(
        Effect.catchAllCause((cause) => Cause.isInterruptedOnly(cause) ? Effect.void : Deferred.failCause(done, cause))
      )

      let smoothedRate = 0
      let sampledAt = Date.now()
      let sampledBytes = 0
      const report = (final: boolean) =>
        Effect.sync(() => {
          const now = Date.now()
          const instant = now > sampledAt ? ((bytesFetched - sampledBytes) * 1000) / (now - sampledAt) : 0
          smoothedRate = smoothedRate === 0 ? instant : smoothedRate * 0.8 + instant * 0.2
          sampledAt = now
          sampledBytes = bytesFetched
          const bytesDone = final ? target.size : coverage.bytes
          try {
            options.onProgress?.({
              label: target.label,
              bytesDone,
              bytesTotal: target.size,
              bytesPerSecond: Math.round(smoothedRate),
              etaSeconds: final ? 0 : smoothedRate > 0 ? (target.size - bytesDone) / smoothedRate : undefined,
              sources: sourceStats()
            })
          } catch {
            // Same as above: progress display is never worth failing a download for.
          }
        })

      // Finalizers run in reverse: workers stop first, then the state is saved, then the file closes.
      // A failed run with nothing verified leaves nothing behind; one with progress keeps it for the next.
      yield* Effect.addFinalizer((exit) =>
        exit._tag === "Success" ? Effect.void : Effect.suspend(() => {
          if (coverage.bytes === 0) discardPartial = true
          return Effect.ignore(persist)
        }))
      yield* Effect.forkScoped(persistOnWake)
      yield* Effect.forkScoped(persistPeriodically)
      yield* Effect.forkScoped(hashPrefix)
      if (options.onProgress !== undefined) {
        yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(Duration.millis(PROGRESS_INTERVAL_MS)), report(false))))
      }
      for (let index = 0; index < Math.min(parallel, units.length); index++) yield* Effect.forkScoped(worker)
      if (units.length === 0) yield* Deferred.succeed(done, undefined)

      yield* Deferred.await(done)
      Queue.unsafeOffer(hasherWakeups, undefined)
      const sha256 = yield* Deferred.await(hashed)
      const { size } = yield* io("cannot read the partial file", () => handle.stat())
      if (sha256 !== target.sha256 || size !== target.size) {
        discardPartial = true
        const used = slots.filter((slot) => slot.bytes > 0).map((slot) => slot.source.name)
        if (bytesReused > 0) used.push("an earlier run")
        return yield* Effect.fail(fail(
          `the received file has SHA-256 ${sha256} and ${size} bytes, expected ${target.sha256} and ${target.size} ` +
            `(bytes from ${used.join(", ")}); the partial download was discarded`
        ))
      }
      if (options.onProgress !== undefined) yield* report(true)
      return { sha256, layout: prefix.layout?.finish() }
    })

    const { layout, sha256 } = yield* Effect.scoped(run).pipe(
      Effect.tapError(() =>
        discardPartial ? Effect.promise(() => removeQuietly(partFile, stateFile)) : Effect.void
      )
    )
    yield* Effect.promise(() => removeQuietly(stateFile))
    return {
      path: partFile,
      sha256,
      size: target.size,
      bytesFetched,
      bytesReused,
      sources: sourceStats(),
      dropped,
      ...(layout === undefined ? {} : { layout })
    } satisfies DownloadResult
  }).pipe(Effect.withSpan("Downloader.download", { attributes: { label: target.label, size: target.size } }))

const backoff = (failures: number) =>
  Effect.map(Random.next, (jitter) =>
    Duration.millis(Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (failures - 1)) * (0.5 + jitter)))

const targetProblem = (target: DownloadTarget): string | undefined => {
  if (!/^[0-9a-f]{64}$/.test(target.sha256)) return "the expected SHA-256 is not 64 lowercase hex characters"
  if (!Number.isSafeInteger(target.size) || target.size < 0) return `the expected size ${target.size} is not a byte count`
  if (target.leaves === undefined) return undefined
  let offset = 0
  for (const [index, leaf] of target.leaves.entries()) {
    if (leaf.offset !== offset || !(leaf.length > 0) || leaf.sha256.length !== 32) return `piece ${index} of the piece list is malformed`
    offset += leaf.length
  }
  return offset === target.size ? undefined : `the piece list covers ${offset} bytes, not ${target.size}`
}

/** Splits what is still missing into units: runs of whole leaves, or plain byte ranges without leaves. */
const planUnits = (target: DownloadTarget, coverage: Coverage, parallel: number): Array<WorkUnit> => {
  const units: Array<WorkUnit> = []
  const missingBytes = target.size - coverage.bytes
  const unitBytes = Math.min(MAX_UNIT_BYTES, Math.max(MIN_UNIT_BYTES, Math.ceil(missingBytes / parallel)))
  const leaves = target.leaves
  if (leaves === undefined) {
    for (const [gapStart, gapEnd] of coverage.gaps(target.size)) {
      for (let position = gapStart; position < gapEnd; position += unitBytes) {
        units.push({ position, end: Math.min(gapEnd, position + unitBytes), nextLeaf: 0, leafEnd: 0 })
      }
    }
    return units
  }
  let current: { -readonly [K in keyof WorkUnit]: WorkUnit[K] } | undefined
  for (const [index, leaf] of leaves.entries()) {
    if (coverage.covers(leaf.offset, leaf.offset + leaf.length)) {
      current = undefined
      continue
    }
    if (current !== undefined && current.end - current.position + leaf.length <= unitBytes) {
      current.end = leaf.offset + leaf.length
      current.leafEnd = index + 1
    } else {
      current = { position: leaf.offset, end: leaf.offset + leaf.length, nextLeaf: index, leafEnd: index + 1 }
      units.push(current)
    }
  }
  return units
}

export { partFileOf, stateFileOf } from "./PartialFile.js"
