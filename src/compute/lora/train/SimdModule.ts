/**
 * Loading the WebAssembly SIMD kernels (each a `.wat` assembled by tools/assemble_wasm.mjs into base64)
 * in Node and browsers alike, and the one switch that turns them all off, for benchmarks that compare
 * them with their JavaScript loops. Where the runtime has no WebAssembly SIMD, a kernel's module is null
 * and its caller runs the JavaScript loop.
 */

/** The part of the WebAssembly API used here (the project's type libraries do not declare it). */
export interface WasmMemory {
  readonly buffer: ArrayBuffer
  grow(pages: number): number
}

interface WasmApi {
  validate(bytes: Uint8Array): boolean
  Module: new(bytes: Uint8Array) => object
  Instance: new(module: object) => { readonly exports: Record<string, unknown> }
}

export interface SimdModule {
  readonly memory: WasmMemory
  readonly exports: Record<string, unknown>
}

const PAGE = 65_536
let enabled = true

/** An instance of the module whose bytes are `base64`, or null where the runtime cannot run it. */
export const instantiateSimd = (base64: string): SimdModule | null => {
  try {
    const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly
    if (wasm === undefined) return null
    const bytes = Uint8Array.from(atob(base64), (char) => char.charCodeAt(0))
    if (!wasm.validate(bytes)) return null
    const { exports } = new wasm.Instance(new wasm.Module(bytes))
    return { memory: exports["memory"] as WasmMemory, exports }
  } catch {
    return null
  }
}

/** The module's memory as floats, grown first to hold at least `bytes`. */
export const heapOf = (module: SimdModule, bytes: number): Float32Array => {
  const { memory } = module
  if (memory.buffer.byteLength < bytes) memory.grow(Math.ceil((bytes - memory.buffer.byteLength) / PAGE))
  return new Float32Array(memory.buffer)
}

/** Whether SIMD kernels may run (they are not switched off). */
export const simdEnabled = (): boolean => enabled

/** Switches every SIMD kernel off (or back on): for benchmarks and tests that compare them with JavaScript. */
export const setSimdEnabled = (on: boolean): void => {
  enabled = on
}
