/**
 * An optimization in a child process of its own, for a long-lived process such as a node: quantizing,
 * calibrating and measuring a model loads onnxruntime and leaves the allocator holding what the run
 * used (a node that published the reference models at its first start stayed at 207 MB, 98 MB of it
 * the allocator's heap and 31 MB onnxruntime's library). A child gives it all back when it exits, and
 * the node's event loop keeps serving meanwhile. The `OptimizeRunner` reference says where
 * the optimizer service runs `optimize`: in this process unless a layer says otherwise.
 */
import { Context } from "effect"
import { moduleProcess } from "../../node/ModuleWorker.js"
import type { OptimizeOptions, OptimizeResult } from "./Optimize.js"
import { optimize } from "./Optimize.js"

/** What crosses to the child: everything but the callbacks (progress comes back as messages). */
export interface OptimizeChildMessage {
  readonly model: Uint8Array
  readonly options: Omit<OptimizeOptions, "onProgress" | "evaluate">
}

export type OptimizeChildReply =
  | { readonly _tag: "Progress"; readonly step: string; readonly done: number; readonly total: number }
  | { readonly _tag: "Done"; readonly result: OptimizeResult }
  | { readonly _tag: "Failed"; readonly reason: string }

/** Runs `optimize` in a child process; fails with the child's error line, or says how it ended without one. */
export const optimizeInChild = (model: Uint8Array, options: OptimizeOptions): Promise<OptimizeResult> => {
  if (options.evaluate !== undefined) return optimize(model, options) // a callback cannot cross
  const { evaluate: _evaluate, onProgress, ...rest } = options
  return new Promise((resolve, reject) => {
    const child = moduleProcess(import.meta.url, "./OptimizeProcess")
    // The first answer settles the promise; what comes after it changes nothing.
    child.on("message", (reply: OptimizeChildReply) => {
      if (reply._tag === "Progress") return onProgress?.(reply.step, reply.done, reply.total)
      if (reply._tag === "Done") resolve(reply.result)
      else reject(new Error(reply.reason))
    })
    child.once("error", reject)
    // After the process ended and its channel closed: every message it sent has been read by then.
    child.once(
      "close",
      (code, signal) =>
        reject(new Error(`the optimizer's process ended (${signal ?? `code ${code}`}) without a result`))
    )
    child.send({ model, options: rest } satisfies OptimizeChildMessage)
  })
}

/** Where the optimizer service runs `optimize`: in this process by default; a node provides `optimizeInChild`. */
export class OptimizeRunner extends Context.Reference<OptimizeRunner>()("edge-net/OptimizeRunner", {
  defaultValue: (): (model: Uint8Array, options: OptimizeOptions) => Promise<OptimizeResult> => optimize
}) {}
