/**
 * Entry point of an Ed25519 verifier thread (see VerifierPool.ts): each message is one packed batch,
 * answered with one byte per signature, 1 when it verifies, in the batch's order.
 */
import { parentPort, workerData } from "node:worker_threads"
import { nodeVerifyRaw } from "../domain/Ed25519.js"
import type { VerifierThreadData, VerifyBatch, VerifyReply } from "./VerifierPool.js"

const PUBLIC_KEY_BYTES = 32
const SIGNATURE_BYTES = 64
const port = parentPort
const verify = nodeVerifyRaw()
if (port === null || verify === undefined) throw new Error("the verifier thread runs in a Node worker thread")
const arena = Buffer.from((workerData as VerifierThreadData).arena)

/** Checks the batch at `start` of `bytes`, writing verdict i to `verdicts[i]`. */
const check = (bytes: Buffer, start: number, count: number, verdicts: Uint8Array) => {
  let offset = start
  for (let i = 0; i < count; i++) {
    const publicKey = bytes.subarray(offset, offset + PUBLIC_KEY_BYTES)
    offset += PUBLIC_KEY_BYTES
    const signature = bytes.subarray(offset, offset + SIGNATURE_BYTES)
    offset += SIGNATURE_BYTES
    const length = bytes.readUInt32LE(offset)
    offset += 4
    const verdict = verify(publicKey, bytes.subarray(offset, offset + length), signature) ? 1 : 0
    offset += length
    // In the arena, verdict i goes over bytes of frames 0..i, which have all been read by now.
    verdicts[i] = verdict
  }
}

port.on("message", (batch: VerifyBatch) => {
  if ("offset" in batch) {
    // Copied out of shared memory first: libsodium's binding does not read a SharedArrayBuffer.
    const frames = Buffer.from(arena.subarray(batch.offset, batch.offset + batch.bytes))
    check(frames, 0, batch.count, arena.subarray(batch.offset, batch.offset + batch.count))
    port.postMessage(batch.id)
  } else {
    const verdicts = new Uint8Array(batch.count)
    check(Buffer.from(batch.buffer), 0, batch.count, verdicts)
    port.postMessage({ id: batch.id, verdicts } satisfies VerifyReply, [verdicts.buffer])
  }
})
port.postMessage("ready")
