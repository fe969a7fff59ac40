/**
 * Ed25519 verification on worker threads, so the node's event loop keeps serving while signatures are
 * checked. The requests of one tick travel as one packed ArrayBuffer per thread (transferred, not copied).
 */
import { Effect } from "effect"
import { availableParallelism } from "node:os"
import type { Worker } from "node:worker_threads"
import { isPublicKeyHex, isSignatureHex } from "../domain/Ed25519.js"
import { moduleWorker } from "./ModuleWorker.js"

/** Checks one signature: false on a bad signature and on any malformed key or signature. */
export interface SignatureVerifier {
  readonly verify: (publicKeyHex: string, message: Uint8Array, signatureHex: string) => Effect.Effect<boolean>
}

export interface VerifierPoolOptions {
  /** Worker threads (default: one fewer than the cores, at least one). */
  readonly threads?: number
  /** Requests that make a batch be sent at once rather than at the end of the tick (default 256). */
  readonly maxBatch?: number
}

/** A batch as posted to a thread: per signature, 32 key bytes, 64 signature bytes, u32le length, message. */
export interface VerifyBatch {
  readonly id: number
  readonly count: number
  readonly buffer: ArrayBuffer
}

/** A thread's answer: one byte per signature of the batch, 1 when it verifies. */
export interface VerifyReply {
  readonly id: number
  readonly verdicts: Uint8Array
}

interface Request {
  readonly publicKeyHex: string
  readonly message: Uint8Array
  readonly signatureHex: string
  readonly resume: (verdict: Effect.Effect<boolean>) => void
}

interface Thread {
  readonly worker: Worker
  readonly pending: Map<number, ReadonlyArray<Request>>
  /** Verifications sent and not yet answered: a batch goes to the least loaded thread. */
  load: number
}

const FRAME_BYTES = 32 + 64 + 4
const malformed = Effect.succeed(false)
const verdictOf = [Effect.succeed(false), Effect.succeed(true)] as const

const pack = (batch: ReadonlyArray<Request>): ArrayBuffer => {
  let size = 0
  for (const request of batch) size += FRAME_BYTES + request.message.length
  const buffer = new ArrayBuffer(size)
  const bytes = Buffer.from(buffer)
  let offset = 0
  for (const request of batch) {
    offset += bytes.write(request.publicKeyHex, offset, 32, "hex")
    offset += bytes.write(request.signatureHex, offset, 64, "hex")
    offset = bytes.writeUInt32LE(request.message.length, offset)
    bytes.set(request.message, offset)
    offset += request.message.length
  }
  return buffer
}

/**
 * A pool of verifier threads, stopped when the scope closes. A thread that dies fails its pending
 * verifications as defects and is started again for the next batch.
 */
export const makeVerifierPool = (options: VerifierPoolOptions = {}) =>
  Effect.gen(function* () {
    const size = Math.max(1, Math.floor(options.threads ?? availableParallelism() - 1))
    const maxBatch = Math.max(1, Math.floor(options.maxBatch ?? 256))
    let closed = false
    let nextId = 0

    const spawn = (): Thread => {
      const worker = moduleWorker(import.meta.url, "./VerifierThread")
      const thread: Thread = { worker, pending: new Map(), load: 0 }
      let failure: Error | undefined
      worker.on("message", (reply: VerifyReply | "ready") => {
        if (reply === "ready") return
        const batch = thread.pending.get(reply.id)
        if (batch === undefined) return
        thread.pending.delete(reply.id)
        thread.load -= batch.length
        for (let i = 0; i < batch.length; i++) batch[i]!.resume(verdictOf[reply.verdicts[i] === 1 ? 1 : 0])
      })
      worker.on("error", (error) => (failure = error))
      worker.once("exit", (code) => {
        const index = threads.indexOf(thread)
        if (index >= 0) threads[index] = undefined
        const why = closed ? "the verifier pool was closed" : `an Ed25519 verifier thread exited (code ${code}${failure === undefined ? "" : `: ${failure.message}`})`
        for (const batch of thread.pending.values()) {
          for (const request of batch) request.resume(Effect.die(new Error(`${why} before the signature was checked`)))
        }
        thread.pending.clear()
        thread.load = 0
      })
      return thread
    }
    const threads: Array<Thread | undefined> = []

    yield* Effect.acquireRelease(
      Effect.async<void, Error>((resume) => {
        let ready = 0
        for (let i = 0; i < size; i++) {
          const thread = spawn()
          threads.push(thread)
          thread.worker.once("message", () => ++ready === size && resume(Effect.void))
          thread.worker.once("error", (error) => resume(Effect.fail(error)))
        }
      }).pipe(Effect.orDie),
      () =>
        Effect.promise(() => {
          closed = true
          const stopping = threads.flatMap((thread) => (thread === undefined ? [] : [thread.worker.terminate()]))
          for (const request of queue.splice(0)) request.resume(Effect.die(new Error("the verifier pool was closed before the signature was checked")))
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

    const post = (batch: ReadonlyArray<Request>) => {
      const thread = leastLoaded()
      const id = nextId++
      const buffer = pack(batch)
      thread.pending.set(id, batch)
      thread.load += batch.length
      thread.worker.postMessage({ id, count: batch.length, buffer } satisfies VerifyBatch, [buffer])
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

    const verify = (publicKeyHex: string, message: Uint8Array, signatureHex: string): Effect.Effect<boolean> =>
      !isPublicKeyHex(publicKeyHex) || !isSignatureHex(signatureHex)
        ? malformed
        : Effect.async<boolean>((resume) => {
          if (closed) return resume(Effect.die(new Error("the verifier pool was closed before the signature was checked")))
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
