/**
 * Recycled 1 MiB buffers for the bodies of bulk downloads. A fresh buffer costs its pages' first-touch
 * faults when bytes are copied into it: filling fresh 1 MiB buffers took about 0.7 s of the main thread
 * per GiB here, and filling one reused buffer a fortieth of that.
 *
 * The reader lends out a buffer's bytes as they arrive (`lend`) and seals it once full (`seal`); whoever
 * ends up with the bytes gives every piece back when done with it (`giveBack`: the part writer, once
 * they are on disk). A sealed buffer with nothing out is reused.
 * Bytes never given back (a piece that failed its hash, an aborted read) only keep their buffer out of
 * the pool: the garbage collector frees it as it would any other.
 */

export const CHUNK_BYTES = 1024 * 1024
// At most this many idle buffers are kept, and none once no download has asked for one for a while.
const MAX_IDLE = 16
const IDLE_MS = 5_000

const idle: Array<Buffer> = []
let dropIdle: ReturnType<typeof setTimeout> | undefined

interface Loan {
  readonly buffer: Buffer
  /** Bytes lent and not given back yet. */
  outstanding: number
  /** The reader will lend nothing more from it. */
  sealed: boolean
}
const loans = new WeakMap<ArrayBufferLike, Loan>()

const reuse = (loan: Loan) => {
  loans.delete(loan.buffer.buffer)
  if (idle.length < MAX_IDLE) idle.push(loan.buffer)
}

/** A CHUNK_BYTES buffer with no bytes of its own yet (its old contents are never lent again). */
export const takeBuffer = (): Buffer => {
  if (dropIdle !== undefined) clearTimeout(dropIdle)
  dropIdle = setTimeout(() => void (idle.length = 0), IDLE_MS)
  dropIdle.unref()
  const buffer = idle.pop() ?? Buffer.allocUnsafeSlow(CHUNK_BYTES)
  loans.set(buffer.buffer, { buffer, outstanding: 0, sealed: false })
  return buffer
}

/** Bytes [start, end) of a buffer from `takeBuffer`, lent out: they stay as they are until given back. */
export const lend = (buffer: Buffer, start: number, end: number): Buffer => {
  const loan = loans.get(buffer.buffer)
  if (loan !== undefined) loan.outstanding += end - start
  return buffer.subarray(start, end)
}

/** The reader is done with the buffer: it is reused once every byte lent from it is given back. */
export const seal = (buffer: Buffer): void => {
  const loan = loans.get(buffer.buffer)
  if (loan === undefined) return
  loan.sealed = true
  if (loan.outstanding === 0) reuse(loan)
}

/** Gives back a piece of lent bytes, exactly once; any other bytes are ignored. */
export const giveBack = (chunk: Uint8Array): void => {
  const loan = loans.get(chunk.buffer)
  if (loan === undefined) return
  loan.outstanding -= chunk.length
  if (loan.outstanding <= 0 && loan.sealed) reuse(loan)
}
