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
  readonly training: {
    readonly steps: number
    readonly finalLoss: number
    readonly samples: number
    readonly duration: number
  }
  readonly quality: {
    readonly perplexityDelta?: number
    readonly taskAccuracy?: number
    readonly humanScore?: number
    readonly [figure: string]: number | undefined
  }
  readonly sharing: { readonly public: boolean; readonly domain: string; readonly license: string }
  /** SHA-256 of the safetensors weights file. */
  readonly checksum: string
  /** A classification adapter's head (`classifier.safetensors`): its class names and its file's SHA-256. */
  readonly classifier?: { readonly labels: ReadonlyArray<string>; readonly checksum: string }
  /** Ed25519 over the canonical metadata without `signature` (see AdapterFile). */
  readonly signature?: { readonly keyId: string; readonly publicKey: string; readonly signature: string }
}

export const scaleOf = (weights: Pick<LoraWeights, "rank" | "alpha">): number => weights.alpha / weights.rank

/** The module path of an ONNX node name: `/model/blocks.0/attn/c_attn/MatMul` -> `model.blocks.0.attn.c_attn`. */
export const moduleNameOf = (nodeName: string): string => nodeName.replace(/^\/+/, "").split("/").slice(0, -1).join(".")

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

const MASK_64 = (1n << 64n) - 1n

/** One SplitMix64 step (Steele, Lea & Flood), the generator xoshiro's authors recommend for seeding. */
const splitMix64 = (state: bigint): { readonly state: bigint; readonly output: bigint } => {
  const next = (state + 0x9e3779b97f4a7c15n) & MASK_64
  let z = next
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK_64
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK_64
  return { state: next, output: z ^ (z >> 31n) }
}

const rotateLeft = (value: number, bits: number) => (value << bits) | (value >>> (32 - bits))

/**
 * The seeded generator LoRA kernels draw from (MicroLoRA's initial A, DARE's drops), so that a seed
 * names the same draws in every implementation, tools/lora_merge_reference.py included: xoshiro128**
 * 1.0 (Blackman & Vigna), its four 32-bit state words the low then high halves of two successive
 * SplitMix64 outputs of the seed. `nextUint32` is one draw; `uniform` maps one draw to [0, 1) as
 * draw / 2^32; `draws` counts the draws made so far.
 */
export class SeededRandom {
  private s0: number
  private s1: number
  private s2: number
  private s3: number
  #draws = 0

  constructor(readonly seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new RangeError(`a seed is a non-negative safe integer, not ${seed}`)
    }
    const first = splitMix64(BigInt(seed))
    const second = splitMix64(first.state)
    this.s0 = Number(first.output & 0xffffffffn) | 0
    this.s1 = Number(first.output >> 32n) | 0
    this.s2 = Number(second.output & 0xffffffffn) | 0
    this.s3 = Number(second.output >> 32n) | 0
  }

  get draws(): number {
    return this.#draws
  }

  nextUint32(): number {
    const result = Math.imul(rotateLeft(Math.imul(this.s1, 5), 7), 9) >>> 0
    const shifted = this.s1 << 9
    this.s2 ^= this.s0
    this.s3 ^= this.s1
    this.s1 ^= this.s2
    this.s0 ^= this.s3
    this.s2 ^= shifted
    this.s3 = rotateLeft(this.s3, 11)
    this.#draws++
    return result
  }

  uniform(): number {
    return this.nextUint32() / 4294967296
  }
}
