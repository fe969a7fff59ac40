/**
 * The LoRA adapter as every part of edge-net sees it: low-rank factors per target module in PEFT's
 * layout, plus the seed's `LoRAAdapter` metadata (model-distribution seed 5.3).
 *
 * A target module is a linear layer y = x W of the base model, W stored [in, out] as ONNX MatMul
 * weights are. Its adapter is A [rank, in] and B [out, rank] (PEFT's `lora_A.weight` and
 * `lora_B.weight`, row-major), and the adapted layer computes y = x W + scale · (x Aᵀ) Bᵀ with
 * scale = alpha / rank. The module's name is the layer's module path, e.g. `model.blocks.0.attn.c_attn`,
 * read from the ONNX node name `/model/blocks.0/attn/c_attn/MatMul` (see `moduleNameOf`).
 */

export interface LoraModule {
  readonly inFeatures: number
  readonly outFeatures: number
  /** [rank, inFeatures], row-major. */
  readonly A: Float32Array
  /** [outFeatures, rank], row-major. */
  readonly B: Float32Array
}

export interface LoraWeights {
  readonly rank: number
  readonly alpha: number
  readonly modules: Readonly<Record<string, LoraModule>>
}

/** The seed's `LoRAAdapter` metadata, without the weights (they travel as safetensors). */
export interface AdapterMetadata {
  readonly id: string
  readonly name: string
  readonly description: string
  readonly version: string
  readonly createdAt: string
  /** Manifest id of the base model, e.g. `tiny-lm`. */
  readonly baseModel: string
  /** SHA-256 of the base model's ONNX file: an adapter only ever applies to these exact weights. */
  readonly baseModelDigest: string
  readonly rank: number
  readonly alpha: number
  readonly targetModules: ReadonlyArray<string>
  readonly training: { readonly steps: number; readonly finalLoss: number; readonly samples: number; readonly duration: number }
  readonly quality: { readonly perplexityDelta?: number; readonly taskAccuracy?: number; readonly humanScore?: number; readonly [figure: string]: number | undefined }
  readonly sharing: { readonly public: boolean; readonly domain: string; readonly license: string }
  /** SHA-256 of the safetensors weights file. */
  readonly checksum: string
  /** Ed25519 over the canonical metadata without `signature` (see AdapterFile). */
  readonly signature?: { readonly keyId: string; readonly publicKey: string; readonly signature: string }
}

export const scaleOf = (weights: Pick<LoraWeights, "rank" | "alpha">): number => weights.alpha / weights.rank

/** The module path of an ONNX node name: `/model/blocks.0/attn/c_attn/MatMul` -> `model.blocks.0.attn.c_attn`. */
export const moduleNameOf = (nodeName: string): string =>
  nodeName.replace(/^\/+/, "").split("/").slice(0, -1).join(".")

/** The dense update scale · Aᵀ Bᵀ in ONNX MatMul layout [in, out]. */
export const deltaWeight = (module: LoraModule, rank: number, scale: number): Float32Array => {
  const { inFeatures, outFeatures, A, B } = module
  const delta = new Float32Array(inFeatures * outFeatures)
  for (let i = 0; i < inFeatures; i++) {
    for (let r = 0; r < rank; r++) {
      const a = A[r * inFeatures + i]! * scale
      if (a === 0) continue
      for (let o = 0; o < outFeatures; o++) delta[i * outFeatures + o]! += a * B[o * rank + r]!
    }
  }
  return delta
}
