/**
 * Ed25519 verification on worker threads, so the node's event loop keeps serving while signatures are
 * checked. The requests of one tick travel as one batch per thread, packed into memory shared with it.
 */
import { Effect } from "effect"
import { availableParallelism } from "node:os"
import type { Worker } from "node:worker_threads"
import { isPublicKeyHex, isSignatureHex } from "../domain/Ed25519.js"
import { moduleWorker } from "./ModuleWorker.js"

/** Checks one signature: false on a bad signature and on any malformed key or signature. */
export interface SignatureVerifier {
  /** The message as bytes, or as text that is signed in UTF-8 (written straight into the thread's memory). */
  readonly verify: (publicKeyHex: string, message: Uint8Array | string, signatureHex: string) => Effect.Effect<boolean>
}

export interface VerifierPoolOptions {
  /** Worker threads (default: one fewer than the cores, at least one). */
  readonly threads?: number | undefined
  /**
   * Requests that make a batch be sent at once rather than at the end of the tick (default 32): small
   * batches let the node go on with the first answers while the thread checks the next ones. Verdicts
   * come back a batch at a time, and the journal commits what one batch let through as one transaction:
   * at 16, 64 signed callers made transactions half the size unsigned ones did (16 commands, not 32),
   * and the writer thread paid its per-transaction costs (head signature, WAL write) twice as often.
   */
  readonly maxBatch?: number | undefined
}

/**
 * A batch as posted to a thread: per signature, 32 key bytes, 64 signature bytes, u32le length,
 * message. It lies in the thread's arena, `bytes` long at `offset` (the answer is written over its first `count`
 * bytes, and the reply is the bare id), or, when it does not fit there, in a transferred `buffer`.
 */
export type VerifyBatch =
  | { readonly id: number; readonly count: number; readonly offset: number; readonly bytes: number }
  | { readonly id: number; readonly count: number; readonly buffer: ArrayBuffer }

/** A thread's answer to a batch sent in a buffer: one byte per signature, 1 when it verifies. */
export interface VerifyReply {
  readonly id: number
  readonly verdicts: Uint8Array
}

/** What a thread is started with: the memory it shares with the pool. */
export interface VerifierThreadData {
  readonly arena: SharedArrayBuffer
}

interface Request {
  readonly publicKeyHex: string
  readonly message: Uint8Array | string
  readonly signatureHex: string
  readonly resume: (verdict: Effect.Effect<boolean>) => void
}

interface InFlight {
  readonly requests: ReadonlyArray<Request>
  /** Where the batch starts in the arena; -1 for a batch sent in its own buffer. */
  readonly start: number
}

interface Thread {
  readonly worker: Worker
  readonly arena: Buffer
  /** Batches in the order sent, which is the order the thread answers them. */
  readonly pending: Map<number, InFlight>
  /** Where the next batch is written in the arena. */
  head: number
  /** Verifications sent and not yet answered: a batch goes to the least loaded thread. */
  load: number
}

const ARENA_BYTES = 1 << 20
const FRAME_BYTES = 32 + 64 + 4
const malformed = Effect.succeed(false)
const verdictOf = [Effect.succeed(false), Effect.succeed(true)] as const

/** The batch's packed size, exact, or at most (a text message counted at 3 bytes per UTF-16 unit, UTF-8's most). */
const packedSize = (batch: ReadonlyArray<Request>, exact: boolean) => {
  let size = 0
  for (const { message } of batch) {
    size += FRAME_BYTES +
      (typeof message !== "string" ? message.length : exact ? Buffer.byteLength(message, "utf8") : message.length * 3)
  }
  return size
}

/** Writes the batch at `start` (which has room for its packed size at most); answers where it ends. */
const pack = (batch: ReadonlyArray<Request>, bytes: Buffer, start: number): number => {
  let offset = start
  for (const request of batch) {
    offset += bytes.write(request.publicKeyHex, offset, 32, "hex")
    offset += bytes.write(request.signatureHex, offset, 64, "hex")
    const message = request.message
    let length: number
    if (typeof message === "string") {
      length = bytes.write(message, offset + 4, "utf8")
    } else {
      bytes.set(message, offset + 4)
      length = message.length
    }
    bytes.writeUInt32LE(length, offset)
    offset += 4 + length
  }
  return offset
}

/** Where `size` bytes fit in the thread's arena now, after the batches still in flight; -1 if nowhere. */
const arenaRoom = (thread: Thread, size: number): number => {
  let oldest: InFlight | undefined
  for (const batch of thread.pending.values()) {
    if (batch.start >= 0) {
      oldest = batch
      break
    }
  }
  if (oldest === undefined) return size <= ARENA_BYTES ? 0 : -1
  const tail = oldest.start
  if (thread.head > tail) {
    if (thread.head + size <= ARENA_BYTES) return thread.head
    return size < tail ? 0 : -1
  }
  return thread.head + size < tail ? thread.head : -1
}

/**
 * A pool of verifier threads, stopped when the scope closes. A thread that dies fails its pending
 * verifications as defects and is started again for the next batch.
 */
export const makeVerifierPool = (options: VerifierPoolOptions = {}) =>
  Effect.gen(function*() {
    const size = Math.max(1, Math.floor(options.threads ?? availableParallelism() - 1))
    const maxBatch = Math.max(1, Math.floor(options.maxBatch ?? 32))
    let closed = false
    let nextId = 0

    const answer = (thread: Thread, id: number, verdicts: Uint8Array) => {
      const batch = thread.pending.get(id)
      if (batch === undefined) return
      thread.pending.delete(id)
      thread.load -= batch.requests.length
      for (let i = 0; i < batch.requests.length; i++) batch.requests[i]!.resume(verdictOf[verdicts[i] === 1 ? 1 : 0])
    }

    const spawn = (): Thread => {
      const shared = new SharedArrayBuffer(ARENA_BYTES)
      const worker = moduleWorker(import.meta.url, "./VerifierThread", {
        workerData: { arena: shared } satisfies VerifierThreadData
      })
      const thread: Thread = { worker, arena: Buffer.from(shared), pending: new Map(), head: 0, load: 0 }
      let failure: Error | undefined
      worker.on("message", (reply: number | VerifyReply | "ready") => {
        if (typeof reply === "number") {
          const batch = thread.pending.get(reply)
          if (batch !== undefined) {
            answer(thread, reply, thread.arena.subarray(batch.start, batch.start + batch.requests.length))
          }
        } else if (reply !== "ready") {
          answer(thread, reply.id, reply.verdicts)
        }
      })
      worker.on("error", (error) => (failure = error))
      worker.once("exit", (code) => {
        const index = threads.indexOf(thread)
        if (index >= 0) threads[index] = undefined
        const why = closed
          ? "the verifier pool was closed"
          : `an Ed25519 verifier thread exited (code ${code}${failure === undefined ? "" : `: ${failure.message}`})`
        for (const batch of thread.pending.values()) {
          for (const request of batch.requests) {
            request.resume(Effect.die(new Error(`${why} before the signature was checked`)))
          }
        }
        thread.pending.clear()
        thread.load = 0
      })
      return thread
    }
    const threads: Array<Thread | undefined> = []

    yield* Effect.acquireRelease(
      // Threads start with the first batch (a node that is never sent a signed command starts none),
      // and nobody waits for them to load: batches wait in their ports meanwhile, and a thread that
      // fails to start fails its batches like one that dies.
      Effect.sync(() => {
        for (let i = 0; i < size; i++) threads.push(undefined)
      }),
      () =>
        Effect.promise(() => {
          closed = true
          const stopping = threads.flatMap((thread) => (thread === undefined ? [] : [thread.worker.terminate()]))
          for (const request of queue.splice(0)) {
            request.resume(Effect.die(new Error("the verifier pool was closed before the signature was checked")))
          }
          return Promise.all(stopping)
        })
    )

    /** The thread with the fewest verifications outstanding; a dead one is started again. */
    const leastLoaded = (): Thread => {
      let best: Thread | undefined
      for (let i = 0; i < threads.length; i++) {
        let thread = threads[i]
        if (thread === undefined) threads[i] = thread = spawn()
        if (best === undefined || thread.load < best.load) best = thread
      }
      return best as Thread
    }

    const post = (requests: ReadonlyArray<Request>) => {
      const thread = leastLoaded()
      const id = nextId++
      const start = arenaRoom(thread, packedSize(requests, false))
      thread.load += requests.length
      if (start >= 0) {
        const end = pack(requests, thread.arena, start)
        thread.head = end
        thread.pending.set(id, { requests, start })
        thread.worker.postMessage(
          { id, count: requests.length, offset: start, bytes: end - start } satisfies VerifyBatch
        )
      } else {
        // Larger than the room left in the arena (commands may be up to 256 KiB): its own buffer.
        const buffer = new ArrayBuffer(packedSize(requests, true))
        pack(requests, Buffer.from(buffer), 0)
        thread.pending.set(id, { requests, start: -1 })
        thread.worker.postMessage({ id, count: requests.length, buffer } satisfies VerifyBatch, [buffer])
      }
    }

    let queue: Array<Request> = []
    let scheduled = false
    // The tick's requests, split evenly over the threads: one message per thread.
    const flush = () => {
      scheduled = false
      if (queue.length === 0 || closed) return
      const requests = queue
      queue = []
      const share = Math.ceil(requests.length / size)
      for (let start = 0; start < requests.length; start += share) post(requests.slice(start, start + share))
    }

    const verify = (publicKeyHex: string, message: Uint8Array | string, signatureHex: string): Effect.Effect<boolean> =>
      !isPublicKeyHex(publicKeyHex) || !isSignatureHex(signatureHex)
        ? malformed
        : Effect.async<boolean>((resume) => {
          if (closed) {
            return resume(Effect.die(new Error("the verifier pool was closed before the signature was checked")))
          }
          queue.push({ publicKeyHex, message, signatureHex, resume })
          if (queue.length >= maxBatch) {
            const batch = queue
            queue = []
            post(batch)
          } else if (!scheduled) {
            scheduled = true
            setImmediate(flush)
          }
        })

    return {
      verify,
      /** The live threads, for diagnostics and tests. */
      threads: (): ReadonlyArray<Worker> => threads.flatMap((thread) => (thread === undefined ? [] : [thread.worker]))
    } as const
  })
