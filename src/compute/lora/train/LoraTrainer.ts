/**
 * Training LoRA adapters on an ONNX model in TypeScript. The base model gets a low-rank branch per
 * target module (GraphLora's injection, with adapter dropout on the branch's input), the executor
 * differentiates the loss with respect to the branch factors only, and AdamW updates them under a
 * warmup schedule, with gradient accumulation and clipping.
 *
 * Two objectives: next-token prediction for a causal LM (windows of token ids), and sequence
 * classification for an encoder (a linear head on the mask-weighted mean of the last hidden state,
 * trained with the adapter, like PEFT's `modules_to_save`).
 *
 * Everything here is synchronous and free of Node APIs: TrainingWorker runs it off the main thread.
 * The options are TrainingConfig's, the losses Objectives' and ClassifierHead's, the epochs TrainingLoop's.
 */
import type { OnnxModel, OnnxNode } from "../../onnx/OnnxModel.js"
import { DataType } from "../../onnx/OnnxModel.js"
import { float32Tensor } from "../../onnx/Tensors.js"
import type { LoraModule, LoraWeights } from "../Adapter.js"
import { SeededRandom } from "../Adapter.js"
import { adapterInputNames, injectAdapterInputs, loraTargets } from "../GraphLora.js"
import type { AdamWState } from "./AdamW.js"
import { AdamW, clipGradNorm } from "./AdamW.js"
import type { ClassifierHead } from "./ClassifierHead.js"
import { argmax, crossEntropy, HEAD_BIAS, HEAD_WEIGHT, headBackward, headLogits } from "./ClassifierHead.js"
import type { Activations, Program } from "./Executor.js"
import { backward, compile, forward } from "./Executor.js"
import type { CausalLmSample, ClassificationSample, Objective, Sample } from "./Objectives.js"
import { meanPool, nextTokenLoss, tokenFeeds } from "./Objectives.js"
import type { FloatTensor, Tensor } from "./Tensor.js"
import { floatTensor, withBufferPool } from "./Tensor.js"
import type { MicroLoRAConfig, ResolvedConfig } from "./TrainingConfig.js"
import { check, resolveConfig } from "./TrainingConfig.js"

/**
 * The base graph with a rank-`rank` branch per module and, when `dropout` > 0, a Dropout on each
 * branch's input (the base path sees the undropped input, as in PEFT).
 */
export const trainingGraph = (
  model: OnnxModel,
  modules: ReadonlyArray<string>,
  rank: number,
  dropout: number
): OnnxModel => {
  const injected = injectAdapterInputs(model, modules, rank)
  if (dropout === 0) return injected
  const ratio = "lora.dropout.ratio"
  const nodes = injected.graph.nodes.flatMap((node): Array<OnnxNode> => {
    const match = /^lora\.(.+)\.down\/MatMul$/.exec(node.name ?? "")
    if (match === null) return [node]
    const dropped = `lora.${match[1]}.dropout`
    return [
      {
        opType: "Dropout",
        name: `${dropped}/Dropout`,
        inputs: [node.inputs[0]!, ratio],
        outputs: [dropped, `${dropped}/mask`],
        attributes: []
      },
      { ...node, inputs: [dropped, node.inputs[1]!] }
    ]
  })
  return {
    ...injected,
    graph: {
      ...injected.graph,
      nodes,
      initializers: [...injected.graph.initializers, float32Tensor(ratio, [], [dropout])]
    }
  }
}

/** Everything a run needs to continue where it stopped, and what it has learned so far. */
export interface TrainingCheckpoint {
  readonly step: number
  readonly weights: LoraWeights
  readonly head?: ClassifierHead
  readonly optimizer: AdamWState
}

/** Modules' A [rank, in] and B [out, rank]: A uniform in ±1/√in (kaiming_uniform with a = √5, as PEFT), B zero. */
const initialModules = (
  model: OnnxModel,
  modules: ReadonlyArray<string>,
  rank: number,
  random: SeededRandom
): Record<string, LoraModule> => {
  const shapes = new Map(loraTargets(model).map((target) => [target.module, target]))
  return Object.fromEntries(
    modules.map((module) => {
      const { inFeatures, outFeatures } = shapes.get(module)!
      const bound = 1 / Math.sqrt(inFeatures)
      const A = Float32Array.from({ length: rank * inFeatures }, () => (random.uniform() * 2 - 1) * bound)
      return [module, { inFeatures, outFeatures, A, B: new Float32Array(outFeatures * rank) }]
    })
  )
}

export class LoraTrainer {
  readonly config: ResolvedConfig
  readonly program: Program
  readonly #model: OnnxModel
  readonly #objective: Objective
  readonly #scale: number
  /** PEFT-layout factors, updated in place: `<module>.A`, `<module>.B`, and the head's. */
  readonly #parameters = new Map<string, Float32Array>()
  readonly #modules: Record<string, LoraModule>
  #head: ClassifierHead | undefined
  #optimizer: AdamW

  constructor(
    model: OnnxModel,
    config: MicroLoRAConfig,
    objective: Objective,
    start?: { readonly weights?: LoraWeights; readonly head?: ClassifierHead; readonly optimizer?: AdamWState }
  ) {
    this.config = resolveConfig(model, config)
    this.#model = model
    this.#objective = objective
    const { rank, alpha, dropout, targetModules, seed } = this.config
    this.#scale = alpha / rank
    const graph = trainingGraph(model, targetModules, rank, dropout)
    this.program = compile(
      graph,
      targetModules.flatMap((module) => [adapterInputNames(module).A, adapterInputNames(module).B])
    )
    if (start?.weights !== undefined) {
      const weights = start.weights
      check(
        weights.rank === rank && weights.alpha === alpha,
        `the starting adapter has rank ${weights.rank} / alpha ${weights.alpha}, the config ${rank} / ${alpha}`
      )
      const missing = targetModules.find((module) => weights.modules[module] === undefined)
      check(missing === undefined, `the starting adapter has no factors for ${missing}`)
      this.#modules = Object.fromEntries(targetModules.map((module) => {
        const factors = weights.modules[module]!
        return [module, { ...factors, A: factors.A.slice(), B: factors.B.slice() }]
      }))
    } else this.#modules = initialModules(model, targetModules, rank, new SeededRandom(seed))
    for (const [module, factors] of Object.entries(this.#modules)) {
      this.#parameters.set(`${module}.A`, factors.A as Float32Array)
      this.#parameters.set(`${module}.B`, factors.B as Float32Array)
    }
    if (objective.kind === "classification") {
      check(
        Number.isInteger(objective.classes) && objective.classes >= 2,
        `a classifier needs 2 or more classes (not ${objective.classes})`
      )
      const output = model.graph.outputs[0]
      const hidden = output?.type?.tensorType?.shape?.at(-1)?.value
      check(
        hidden !== undefined && output?.type?.tensorType?.elemType === DataType.FLOAT,
        "a classifier needs a float output [batch, sequence, hidden] with a fixed hidden size"
      )
      const head = start?.head ??
        {
          hidden: hidden!,
          classes: objective.classes,
          weight: new Float32Array(hidden! * objective.classes),
          bias: new Float32Array(objective.classes)
        }
      check(
        head.hidden === hidden && head.classes === objective.classes,
        `the starting head is [${head.hidden} -> ${head.classes}], the model needs [${hidden} -> ${objective.classes}]`
      )
      this.#head = { ...head, weight: head.weight.slice(), bias: head.bias.slice() }
      this.#parameters.set(HEAD_WEIGHT, this.#head.weight)
      this.#parameters.set(HEAD_BIAS, this.#head.bias)
    }
    this.#optimizer = new AdamW(
      {
        learningRate: this.config.learningRate,
        betas: this.config.betas,
        epsilon: this.config.epsilon,
        weightDecay: this.config.weightDecay
      },
      start?.optimizer
    )
  }

  get objective(): Objective {
    return this.#objective
  }

  get optimizerStep(): number {
    return this.#optimizer.step
  }

  /** The live trainable arrays by name (`<module>.A`, `<module>.B`, `head.weight`, `head.bias`): writes change the model. */
  parameters(): ReadonlyMap<string, Float32Array> {
    return this.#parameters
  }

  /** The adapter as trained so far (copies). */
  weights(): LoraWeights {
    const modules = Object.fromEntries(
      Object.entries(this.#modules).map((
        [module, factors]
      ) => [module, { ...factors, A: factors.A.slice(), B: factors.B.slice() }])
    )
    return { rank: this.config.rank, alpha: this.config.alpha, modules }
  }

  head(): ClassifierHead | undefined {
    const head = this.#head
    return head === undefined ? undefined : { ...head, weight: head.weight.slice(), bias: head.bias.slice() }
  }

  checkpoint(): TrainingCheckpoint {
    const head = this.head()
    return {
      step: this.#optimizer.step,
      weights: this.weights(),
      ...(head === undefined ? {} : { head }),
      optimizer: this.#optimizer.state()
    }
  }

  /** The branch inputs for the current factors: Aᵀ [in, rank] and scale · Bᵀ [rank, out]. */
  #adapterFeeds(feeds: Map<string, Tensor>): void {
    const rank = this.config.rank
    for (const [module, { inFeatures, outFeatures, A, B }] of Object.entries(this.#modules)) {
      const names = adapterInputNames(module)
      const fedA = new Float32Array(inFeatures * rank)
      const fedB = new Float32Array(rank * outFeatures)
      for (let r = 0; r < rank; r++) {
        for (let i = 0; i < inFeatures; i++) fedA[i * rank + r] = A[r * inFeatures + i]!
        for (let o = 0; o < outFeatures; o++) fedB[r * outFeatures + o] = this.#scale * B[o * rank + r]!
      }
      feeds.set(names.A, floatTensor([inFeatures, rank], fedA))
      feeds.set(names.B, floatTensor([rank, outFeatures], fedB))
    }
  }

  #run(rows: ReadonlyArray<ReadonlyArray<number>>, training: boolean, random?: () => number): Activations {
    const padId = this.#objective.kind === "classification" ? this.#objective.padId ?? 0 : 0
    const feeds = tokenFeeds(this.#model, rows, padId)
    this.#adapterFeeds(feeds)
    return forward(this.program, feeds, { training, ...(random === undefined ? {} : { random }) })
  }

  /**
   * `work` with every array the executor makes lent from the program's pool, all taken back when it
   * returns: what `work` returns must be copies (the next run writes over the pool's arrays).
   */
  #pooled<T>(work: () => T): T {
    try {
      return withBufferPool(this.program.pool, work)
    } finally {
      this.program.pool.reclaim()
    }
  }

  #output(activations: Activations): FloatTensor {
    return activations.values.get(this.program.outputs[0]!) as FloatTensor
  }

  /**
   * Loss of one micro-batch and the gradients of every trainable parameter (PEFT layout), each scaled
   * by `gradScale` (1 / the number of units the optimizer step averages over). `sampleWeights` scale
   * each sample's share of the loss and gradients (prioritized replay); `sampleLosses` are each
   * sample's own loss (per token for a language model), unweighted, for its priority.
   */
  lossAndGrads(
    samples: ReadonlyArray<Sample>,
    gradScale: number,
    random: () => number,
    sampleWeights?: ArrayLike<number>
  ): { total: number; count: number; grads: Map<string, Float32Array>; sampleLosses: Float64Array } {
    return this.#pooled(() => this.#lossAndGrads(samples, gradScale, random, sampleWeights))
  }

  #lossAndGrads(
    samples: ReadonlyArray<Sample>,
    gradScale: number,
    random: () => number,
    sampleWeights?: ArrayLike<number>
  ): { total: number; count: number; grads: Map<string, Float32Array>; sampleLosses: Float64Array } {
    const rows = samples.map((sample) => sample.ids)
    const activations = this.#run(rows, true, random)
    const output = this.#output(activations)
    const seeds = new Map<string, Float32Array>()
    const grads = new Map<string, Float32Array>()
    let total: number
    let count: number
    let sampleLosses: Float64Array
    if (this.#objective.kind === "causal-lm") {
      const loss = nextTokenLoss(output, rows, gradScale, sampleWeights)
      total = loss.total
      count = loss.count
      sampleLosses = loss.rowLosses
      seeds.set(this.program.outputs[0]!, loss.grad!)
    } else {
      const head = this.#head!
      const labels = (samples as ReadonlyArray<ClassificationSample>).map((sample) => sample.label)
      const pooled = meanPool(output, rows)
      const { total: summed, residual, rowLosses } = crossEntropy(
        headLogits(head, pooled, rows.length),
        labels,
        head.classes,
        sampleWeights
      )
      total = summed
      count = rows.length
      sampleLosses = rowLosses
      const { dWeight, dBias, dPooled } = headBackward(head, pooled, residual, rows.length, gradScale)
      grads.set(HEAD_WEIGHT, dWeight)
      grads.set(HEAD_BIAS, dBias)
      const [batch, length, width] = output.dims as [number, number, number]
      const dHidden = new Float32Array(output.data.length)
      for (let b = 0; b < batch; b++) {
        const used = Math.min(length, rows[b]!.length)
        for (let t = 0; t < used; t++) {
          for (let h = 0; h < width; h++) dHidden[(b * length + t) * width + h] = dPooled[b * width + h]! / used
        }
      }
      seeds.set(this.program.outputs[0]!, dHidden)
    }
    const fed = backward(this.program, activations, seeds)
    const rank = this.config.rank
    for (const [module, { inFeatures, outFeatures }] of Object.entries(this.#modules)) {
      const names = adapterInputNames(module)
      const dFedA = fed.get(names.A)!
      const dFedB = fed.get(names.B)!
      const dA = new Float32Array(rank * inFeatures)
      const dB = new Float32Array(outFeatures * rank)
      for (let r = 0; r < rank; r++) {
        for (let i = 0; i < inFeatures; i++) dA[r * inFeatures + i] = dFedA[i * rank + r]!
        for (let o = 0; o < outFeatures; o++) dB[o * rank + r] = this.#scale * dFedB[r * outFeatures + o]!
      }
      grads.set(`${module}.A`, dA)
      grads.set(`${module}.B`, dB)
    }
    return { total, count, grads, sampleLosses }
  }

  /** One optimizer step from summed gradients: clip, then AdamW at `learningRate`. Returns the pre-clip norm. */
  applyGradients(grads: Map<string, Float32Array>, learningRate: number): number {
    const norm = clipGradNorm(grads, this.config.maxGradNorm)
    this.#optimizer.update(this.#parameters, grads, learningRate)
    return norm
  }

  /** Mean next-token loss (nats per token) of windows, without dropout. */
  languageModelLoss(windows: ReadonlyArray<CausalLmSample>, batchSize = this.config.batchSize): number {
    let total = 0
    let count = 0
    for (let start = 0; start < windows.length; start += batchSize) {
      const rows = windows.slice(start, start + batchSize).map((sample) => sample.ids)
      const loss = this.#pooled(() => nextTokenLoss(this.#output(this.#run(rows, false)), rows))
      total += loss.total
      count += loss.count
    }
    return total / Math.max(1, count)
  }

  /** Pooled features of sequences through the current adapter (no dropout), [n, hidden]. */
  features(
    samples: ReadonlyArray<{ readonly ids: ReadonlyArray<number> }>,
    batchSize = this.config.batchSize
  ): Array<Float32Array> {
    const features: Array<Float32Array> = []
    for (let start = 0; start < samples.length; start += batchSize) {
      const rows = samples.slice(start, start + batchSize).map((sample) => sample.ids)
      const { pooled, width } = this.#pooled(() => {
        const output = this.#output(this.#run(rows, false))
        return { pooled: meanPool(output, rows).slice(), width: output.dims[2]! }
      })
      for (let b = 0; b < rows.length; b++) features.push(pooled.slice(b * width, (b + 1) * width))
    }
    return features
  }

  /** Predicted class of each sequence. */
  classify(
    samples: ReadonlyArray<{ readonly ids: ReadonlyArray<number> }>,
    batchSize = this.config.batchSize
  ): Array<number> {
    const head = this.#head
    check(head !== undefined, "classify needs a classification objective")
    return this.features(samples, batchSize).map((pooled) => argmax(headLogits(head!, pooled, 1)))
  }
}
