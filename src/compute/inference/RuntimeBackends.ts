/**
 * The two runtimes as Backends: onnxruntime-node (native) and onnxruntime-web (WebAssembly, which also
 * runs under Node). Each package is imported only when its backend is made.
 */
import { type Backend, ortBackend, type OrtModule } from "./Backend.js"

/** How onnxruntime-web runs. */
export interface WebBackendOptions {
  /** WebAssembly threads; 1 (the default) needs no worker threads, which suits Node and small models. */
  readonly numThreads?: number | undefined
  /** Where the .wasm files are served from, in a browser; Node finds them next to the package. */
  readonly wasmPaths?: string | undefined
}

/** How onnxruntime-node runs. */
export interface NodeBackendOptions {
  /** Threads one operator may use; onnxruntime's default (one per core) when absent. */
  readonly intraOpNumThreads?: number | undefined
}

/** The native runtime (onnxruntime-node), every graph optimization on. */
export const makeNodeBackend = async (options: NodeBackendOptions = {}): Promise<Backend> => {
  // eslint-disable-next-line no-restricted-syntax -- onnxruntime-node and -web declare the same API as two unrelated type trees; OrtModule is the part both satisfy
  const ort = (await import("onnxruntime-node")) as unknown as OrtModule
  const threads = options.intraOpNumThreads === undefined
    ? {}
    : { intraOpNumThreads: options.intraOpNumThreads, interOpNumThreads: 1 }
  return ortBackend("onnxruntime-node", ort, { graphOptimizationLevel: "all", ...threads })
}

/** The WebAssembly runtime (onnxruntime-web), on one thread unless told otherwise. */
export const makeWebBackend = async (options: WebBackendOptions = {}): Promise<Backend> => {
  const ort = await import("onnxruntime-web")
  ort.env.wasm.numThreads = options.numThreads ?? 1
  if (options.wasmPaths !== undefined) ort.env.wasm.wasmPaths = options.wasmPaths
  // eslint-disable-next-line no-restricted-syntax -- onnxruntime-node and -web declare the same API as two unrelated type trees; OrtModule is the part both satisfy
  return ortBackend("onnxruntime-web", ort as unknown as OrtModule, {
    executionProviders: ["wasm"],
    graphOptimizationLevel: "all"
  })
}
