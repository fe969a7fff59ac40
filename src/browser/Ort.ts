/**
 * onnxruntime-web in the page, loaded from the node that served the SDK (/ui/ort/, never a CDN): the
 * WebAssembly build, or the WebGPU one when the browser has a GPU adapter and `backend` allows it.
 */
import { type Backend, ortBackend, type OrtModule } from "../compute/inference/Backend.js"

/** Which runtime runs the model: `auto` takes WebGPU when the browser offers an adapter, else WebAssembly. */
export type BackendChoice = "auto" | "wasm" | "webgpu"

/** The settings of onnxruntime-web's `env.wasm` the SDK sets. */
interface OrtEnvironment {
  readonly env: { readonly wasm: { numThreads?: number; wasmPaths?: string } }
}

const isOrtModule = (value: unknown): value is OrtModule & OrtEnvironment =>
  typeof value === "object" && value !== null && "InferenceSession" in value && "Tensor" in value && "env" in value

interface GpuNavigator {
  readonly gpu?: { readonly requestAdapter: () => Promise<unknown> }
}

/** Whether this browser can run WebGPU: `navigator.gpu` and an adapter behind it. */
export const hasWebGpu = async (): Promise<boolean> => {
  const gpu = (globalThis.navigator as GpuNavigator | undefined)?.gpu
  if (gpu === undefined) return false
  try {
    return (await gpu.requestAdapter()) !== null
  } catch {
    return false
  }
}

/** The runtime the SDK's own files sit beside: `/ui/ort/` next to `/ui/sdk.js`. */
export const defaultOrtBase = (sdkUrl: string) => new URL("./ort/", sdkUrl).href

/** Loads onnxruntime-web from `ortBase` and makes the backend the choice asks for. */
export const loadBackend = async (
  choice: BackendChoice,
  ortBase: string,
  threads?: number
): Promise<{ readonly backend: Backend; readonly name: "wasm" | "webgpu" }> => {
  const name = choice === "auto" ? ((await hasWebGpu()) ? "webgpu" : "wasm") : choice
  const base = ortBase.endsWith("/") ? ortBase : `${ortBase}/`
  const url = `${base}${name === "webgpu" ? "ort.webgpu.min.mjs" : "ort.wasm.min.mjs"}`
  const loaded: unknown = await import(/* @vite-ignore */ url)
  if (!isOrtModule(loaded)) throw new Error(`${url} is not onnxruntime-web`)
  loaded.env.wasm.wasmPaths = base
  // More than one thread needs SharedArrayBuffer, which only a cross-origin isolated page has.
  loaded.env.wasm.numThreads = threads ?? (globalThis.crossOriginIsolated === true ? 2 : 1)
  const executionProviders = name === "webgpu" ? ["webgpu", "wasm"] : ["wasm"]
  return {
    backend: ortBackend("onnxruntime-web", loaded, { executionProviders, graphOptimizationLevel: "all" }),
    name
  }
}
