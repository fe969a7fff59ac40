/**
 * Entry point of a child process that runs one optimization (`optimizeInChild`, OptimizeChild.ts):
 * the model and options come in one message, each pipeline step goes back as it happens, then the
 * result or the error's line, and the process exits, giving back all it allocated (onnxruntime's
 * library and arenas among it).
 */
import { optimize } from "./Optimize.js"
import type { OptimizeChildMessage, OptimizeChildReply } from "./OptimizeChild.js"

const send = (reply: OptimizeChildReply): Promise<void> =>
  new Promise((resolve) => {
    if (!process.connected) return resolve()
    process.send!(reply, undefined, {}, () => resolve())
  })

// The caller gone (a node stopped or killed), the run has nobody to answer: it stops with it.
process.once("disconnect", () => process.exit(0))

process.once("message", (message: OptimizeChildMessage) => {
  optimize(message.model, {
    ...message.options,
    onProgress: (step, done, total) => void send({ _tag: "Progress", step, done, total })
  }).then(
    (result) => send({ _tag: "Done", result }),
    (error: unknown) => send({ _tag: "Failed", reason: error instanceof Error ? error.message : String(error) })
  ).finally(() => {
    if (process.connected) process.disconnect()
  })
})
