/** The messages between a page and its inference worker (InferenceWorker.ts). */
import type { EmbedConfig, GenerateConfig, SessionOptions } from "./InferenceSession.js"
import type { LoadedModel } from "./ModelLoader.js"

/** What the page asks: open the model once, then embed or generate, each call with its own id. */
export type InferenceRequest =
  | { readonly type: "open"; readonly model: LoadedModel; readonly options: SessionOptions }
  | {
    readonly type: "embed"
    readonly id: number
    readonly texts: ReadonlyArray<string>
    readonly config: EmbedConfig
  }
  | { readonly type: "generate"; readonly id: number; readonly prompt: string; readonly config: GenerateConfig }

/** What the worker answers. */
export type InferenceReply =
  | { readonly type: "opened"; readonly backend: "wasm" | "webgpu"; readonly kind: "encoder" | "decoder" }
  | { readonly type: "embedded"; readonly id: number; readonly vectors: Array<Float32Array> }
  | { readonly type: "generated"; readonly id: number; readonly text: string }
  | { readonly type: "failed"; readonly id: number | undefined; readonly message: string }
