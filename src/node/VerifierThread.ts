/**
 * Entry point of an Ed25519 verifier thread (see VerifierPool.ts): each message is one batch packed
 * in an ArrayBuffer, the reply one byte per signature, 1 when it verifies, in the batch's order.
 */
import { parentPort } from "node:worker_threads"
import { nodeCryptoVerifyBytes } from "../domain/Ed25519.js"
import type { VerifyBatch, VerifyReply } from "./VerifierPool.js"

const PUBLIC_KEY_BYTES = 32
const SIGNATURE_BYTES = 64
const port = parentPort
const verify = nodeCryptoVerifyBytes()
if (port === null || verify === undefined) throw new Error("the verifier thread runs in a Node worker thread")

port.on("message", ({ id, count, buffer }: VerifyBatch) => {
  const bytes = Buffer.from(buffer)
  const verdicts = new Uint8Array(count)
  let offset = 0
  for (let i = 0; i < count; i++) {
    const publicKeyHex = bytes.toString("hex", offset, offset + PUBLIC_KEY_BYTES)
    offset += PUBLIC_KEY_BYTES
    const signature = bytes.subarray(offset, offset + SIGNATURE_BYTES)
    offset += SIGNATURE_BYTES
    const length = bytes.readUInt32LE(offset)
    offset += 4
    verdicts[i] = verify(publicKeyHex, bytes.subarray(offset, offset + length), signature) ? 1 : 0
    offset += length
  }
  port.postMessage({ id, verdicts } satisfies VerifyReply, [verdicts.buffer])
})
port.postMessage("ready")
