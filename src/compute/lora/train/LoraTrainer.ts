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
 */
import type { OnnxModel, OnnxNode } from "../../onnx/OnnxModel.js"
import { DataType } from "../../onnx/OnnxModel.js"
import { float32Tensor } from "../../onnx/Tensors.js"
import { logSumExp, softmaxInto } from "../../validate/Metrics.js"
import type { LoraModule, LoraWeights } from "../Adapter.js"
import { SeededRandom } from "../Adapter.js"
import { adapterInputNames, injectAdapterInputs, loraTargets } from "../GraphLora.js"
import type { Activations, Program } from "./Executor.js"
import { backward, compile, forward } from "./Executor.js"
import type { AdamWState, Schedule } from "./Optimizer.js"
import { AdamW, clipGradNorm, learningRateAt } from "./Optimizer.js"
import type { FloatTensor, Tensor } from "./Tensor.js"
import { floatTensor, intTensor } from "./Tensor.js"

/** The seed's `MicroLoRAConfig`: the adapter's shape and how it is trained. */
export interface MicroLoRAConfig {
  /** 1 to 64; MicroLoRA proper is 1-2, graph adapters usually 4-16. */
  readonly rank: number
  /** The update is scaled by alpha / rank (PEFT's lora_alpha). Default 2 · rank. */
  readonly alpha?: number | undefined
  /** Dropout on each branch's input while training (PEFT's lora_dropout). Default 0. */
  readonly dropout?: number | undefined
  /** Module paths to adapt (see loraTargets). Default: every target of the model. */
  readonly targetModules?: ReadonlyArray<string> | undefined
  readonly learningRate?: number | undefined
  readonly weightDecay?: number | undefined
  readonly betas?: readonly [number, number] | undefined
  readonly epsilon?: number | undefined
  readonly schedule?: Schedule | undefined
  /** Steps of linear warmup; or a fraction of all steps with warmupRatio. */
  readonly warmupSteps?: number | undefined
  readonly warmupRatio?: number | undefined
  readonly epochs?: number | undefined
  /** Stop after this many optimizer steps (default: all epochs). */
  readonly maxSteps?: number | undefined
  /** Samples per forward/backward pass. */
  readonly batchSize?: number | undefined
  /** Micro-batches whose gradients are summed before one optimizer step. */
  readonly gradientAccumulationSteps?: number | undefined
  /** Clip the global gradient norm to this (0: no clipping). */
  readonly maxGradNorm?: number | undefined
  readonly seed?: number | undefined
  /** Report a checkpoint every this many optimizer steps (0: none). */
  readonly checkpointEvery?: number | undefined
}

export type ResolvedConfig = { readonly [K in Exclude<keyof MicroLoRAConfig, "targetModules" | "warmupRatio" | "maxSteps">]-?: NonNullable<MicroLoRAConfig[K]> } & {
  readonly targetModules: ReadonlyArray<string>
  readonly maxSteps: number | undefined
  readonly warmupRatio: number | undefined
}

export class TrainingError extends Error {
  override readonly name = "TrainingError"
}

const check = (ok: boolean, reason: string) => {
  if (!ok) throw new TrainingError(reason)
}

/** The config with defaults filled in, or a TrainingError naming the first bad option. */
export const resolveConfig = (model: OnnxModel, config: MicroLoRAConfig): ResolvedConfig => {
  const targets = loraTargets(model).map((target) => target.module)
  const rank = config.rank
  check(Number.isInteger(rank) && rank >= 1 && rank <= 64, `rank must be a whole number from 1 to 64 (not ${rank})`)
  const resolved: ResolvedConfig = {
    rank,
    alpha: config.alpha ?? 2 * rank,
    dropout: config.dropout ?? 0,
    targetModules: config.targetModules ?? targets,
    learningRate: config.learningRate ?? 1e-3,
    weightDecay: config.weightDecay ?? 0.01,
    betas: config.betas ?? [0.9, 0.999],
    epsilon: config.epsilon ?? 1e-8,
    schedule: config.schedule ?? "cosine",
    warmupSteps: config.warmupSteps ?? 0,
    warmupRatio: config.warmupRatio,
    epochs: config.epochs ?? 1,
    maxSteps: config.maxSteps,
    batchSize: config.batchSize ?? 8,
    gradientAccumulationSteps: config.gradientAccumulationSteps ?? 1,
    maxGradNorm: config.maxGradNorm ?? 1,
    seed: config.seed ?? 0,
    checkpointEvery: config.checkpointEvery ?? 0
  }
  check(resolved.alpha > 0 && Number.isFinite(resolved.alpha), `alpha must be a positive number (not ${resolved.alpha})`)
  check(resolved.dropout >= 0 && resolved.dropout < 1, `dropout must be in [0, 1) (not ${resolved.dropout})`)
  check(resolved.learningRate > 0 && Number.isFinite(resolved.learningRate), `learningRate must be a positive number (not ${resolved.learningRate})`)
  check(resolved.weightDecay >= 0, `weightDecay must be 0 or more (not ${resolved.weightDecay})`)
  check(resolved.betas.every((beta) => beta >= 0 && beta < 1), `betas must be in [0, 1) (not ${resolved.betas.join(", ")})`)
  check(["cosine", "linear", "constant"].includes(resolved.schedule), `schedule must be cosine, linear or constant (not ${resolved.schedule})`)
  check(Number.isInteger(resolved.warmupSteps) && resolved.warmupSteps >= 0, `warmupSteps must be a whole number, 0 or more (not ${resolved.warmupSteps})`)
  check(resolved.warmupRatio === undefined || (resolved.warmupRatio >= 0 && resolved.warmupRatio < 1), `warmupRatio must be in [0, 1) (not ${resolved.warmupRatio})`)
  check(Number.isInteger(resolved.epochs) && resolved.epochs >= 1, `epochs must be a whole number, 1 or more (not ${resolved.epochs})`)
  check(resolved.maxSteps === undefined || (Number.isInteger(resolved.maxSteps) && resolved.maxSteps >= 1), `maxSteps must be a whole number, 1 or more (not ${resolved.maxSteps})`)
  check(Number.isInteger(resolved.batchSize) && resolved.batchSize >= 1, `batchSize must be a whole number, 1 or more (not ${resolved.batchSize})`)
  check(Number.isInteger(resolved.gradientAccumulationSteps) && resolved.gradientAccumulationSteps >= 1, `gradientAccumulationSteps must be a whole number, 1 or more (not ${resolved.gradientAccumulationSteps})`)
  check(resolved.maxGradNorm >= 0, `maxGradNorm must be 0 or more (not ${resolved.maxGradNorm})`)
  check(Number.isSafeInteger(resolved.seed) && resolved.seed >= 0, `seed must be a non-negative whole number (not ${resolved.seed})`)
  check(Number.isInteger(resolved.checkpointEvery) && resolved.checkpointEvery >= 0, `checkpointEvery must be a whole number, 0 or more (not ${resolved.checkpointEvery})`)
  check(resolved.targetModules.length > 0, "no target modules: the model has no MatMul weights LoRA can adapt")
  const known = new Set(targets)
  const unknown = resolved.targetModules.filter((module) => !known.has(module))
  check(unknown.length === 0, `${unknown[0]} is not a LoRA target of this model (${targets.length} targets, such as ${targets.slice(0, 3).join(", ")})`)
  return resolved
}

/**
 * The base graph with a rank-`rank` branch per module and, when `dropout` > 0, a Dropout on each
 * branch's input (the base path sees the undropped input, as in PEFT).
 */
export const trainingGraph = (model: OnnxModel, modules: ReadonlyArray<string>, rank: number, dropout: number): OnnxModel => {
  const injected = injectAdapterInputs(model, modules, rank)
  if (dropout === 0) return injected
  const ratio = "lora.dropout.ratio"
  const nodes = injected.graph.nodes.flatMap((node): Array<OnnxNode> => {
    const match = /^lora\.(.+)\.down\/MatMul$/.exec(node.name ?? "")
    if (match === null) return [node]
    const dropped = `lora.${match[1]}.dropout`
    return [
      { opType: "Dropout", name: `${dropped}/Dropout`, inputs: [node.inputs[0]!, ratio], outputs: [dropped, `${dropped}/mask`], attributes: [] },
      { ...node, inputs: [dropped, node.inputs[1]!] }
    ]
  })
  return { ...injected, graph: { ...injected.graph, nodes, initializers: [...injected.graph.initializers, float32Tensor(ratio, [], [dropout])] } }
}

// ---- objectives and batches ----

/** A causal LM learns to predict each next token of equally long windows of token ids. */
export interface CausalLmSample {
  readonly ids: ReadonlyArray<number>
}

/** An encoder learns to give a sequence its class label. */
export interface ClassificationSample {
  readonly ids: ReadonlyArray<number>
  readonly label: number
}

export type Objective = { readonly kind: "causal-lm" } | { readonly kind: "classification"; readonly classes: number; readonly padId?: number }

export type Sample = CausalLmSample | ClassificationSample

/** A linear classification head [hidden, classes] with its bias. */
export interface ClassifierHead {
  readonly hidden: number
  readonly classes: number
  readonly weight: Float32Array
  readonly bias: Float32Array
}

const symbolicDims = (model: OnnxModel, name: string): Array<number | string> =>
  (model.graph.inputs.find((input) => input.name === name)?.type?.tensorType?.shape ?? []).map((dim) => dim.value ?? dim.param ?? "?")

/** Feeds for a batch of token rows (right-padded to one length, mask 0 on padding), empty KV cache. */
export const tokenFeeds = (model: OnnxModel, rows: ReadonlyArray<ReadonlyArray<number>>, padId = 0): Map<string, Tensor> => {
  const batch = rows.length
  const length = Math.max(...rows.map((row) => row.length))
  const ids = new Float64Array(batch * length).fill(padId)
  const mask = new Float64Array(batch * length)
  const positions = new Float64Array(batch * length)
  rows.forEach((row, b) => {
    for (let t = 0; t < length; t++) {
      positions[b * length + t] = t
      if (t < row.length) {
        ids[b * length + t] = row[t]!
        mask[b * length + t] = 1
      }
    }
  })
  const feeds = new Map<string, Tensor>()
  for (const input of model.graph.inputs) {
    const name = input.name
    if (name === "input_ids") feeds.set(name, intTensor([batch, length], ids))
    else if (name === "attention_mask") feeds.set(name, intTensor([batch, length], mask))
    else if (name === "position_ids") feeds.set(name, intTensor([batch, length], positions))
    else if (name === "token_type_ids") feeds.set(name, intTensor([batch, length]))
    else if (name.startsWith("past_key_values")) {
      const dims = symbolicDims(model, name).map((dim, axis) => (axis === 0 ? batch : axis === 2 ? 0 : typeof dim === "number" ? dim : 1))
      feeds.set(name, floatTensor(dims))
    }
  }
  return feeds
}

/** Summed next-token negative log-likelihood of logits [B, T, V] and, optionally, its gradient scaled by `gradScale`. */
export const nextTokenLoss = (logits: FloatTensor, rows: ReadonlyArray<ReadonlyArray<number>>, gradScale?: number) => {
  const [batch, length, vocab] = logits.dims as [number, number, number]
  const grad = gradScale === undefined ? undefined : new Float32Array(logits.data.length)
  let total = 0
  let count = 0
  const x = logits.data
  for (let b = 0; b < batch; b++) {
    const row = rows[b]!
    for (let t = 0; t + 1 < Math.min(length, row.length); t++) {
      const start = (b * length + t) * vocab
      const target = row[t + 1]!
      count++
      if (grad === undefined) {
        total += logSumExp(x, start, vocab) - x[start + target]!
        continue
      }
      total += softmaxInto(x, start, vocab, grad) - x[start + target]!
      for (let v = 0; v < vocab; v++) grad[start + v]! *= gradScale!
      grad[start + target]! -= gradScale!
    }
  }
  return { total, count, grad }
}

/** The mask-weighted mean over positions of hidden [B, T, H]. */
export const meanPool = (hidden: FloatTensor, rows: ReadonlyArray<ReadonlyArray<number>>): Float32Array => {
  const [batch, length, width] = hidden.dims as [number, number, number]
  const pooled = new Float32Array(batch * width)
  for (let b = 0; b < batch; b++) {
    const count = Math.min(length, rows[b]!.length)
    for (let t = 0; t < count; t++) {
      const from = (b * length + t) * width
      for (let h = 0; h < width; h++) pooled[b * width + h]! += hidden.data[from + h]! / count
    }
  }
  return pooled
}

export const headLogits = (head: ClassifierHead, pooled: Float32Array, batch: number): Float32Array => {
  const { hidden, classes, weight, bias } = head
  const logits = new Float32Array(batch * classes)
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < classes; c++) {
      let sum = bias[c]!
      for (let h = 0; h < hidden; h++) sum += pooled[b * hidden + h]! * weight[h * classes + c]!
      logits[b * classes + c] = sum
    }
  }
  return logits
}

/** Softmax cross-entropy of each row's logits against its label: the summed loss and (p - onehot). */
const crossEntropy = (logits: Float32Array, labels: ReadonlyArray<number>, classes: number) => {
  let total = 0
  const residual = new Float32Array(logits.length)
  labels.forEach((label, b) => {
    const start = b * classes
    total += softmaxInto(logits, start, classes, residual) - logits[start + label]!
    residual[start + label]! -= 1
  })
  return { total, residual }
}

/** The head's logistic-regression update from pooled features: its gradients and the features' gradient. */
const headBackward = (head: ClassifierHead, pooled: Float32Array, residual: Float32Array, batch: number, scale: number) => {
  const { hidden, classes, weight } = head
  const dWeight = new Float32Array(weight.length)
  const dBias = new Float32Array(classes)
  const dPooled = new Float32Array(pooled.length)
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < classes; c++) {
      const r = residual[b * classes + c]! * scale
      dBias[c]! += r
      for (let h = 0; h < hidden; h++) {
        dWeight[h * classes + c]! += pooled[b * hidden + h]! * r
        dPooled[b * hidden + h]! += weight[h * classes + c]! * r
      }
    }
  }
  return { dWeight, dBias, dPooled }
}

// ---- the trainer ----

/** Everything a run needs to continue where it stopped, and what it has learned so far. */
export interface TrainingCheckpoint {
  readonly step: number
  readonly weights: LoraWeights
  readonly head?: ClassifierHead
  readonly optimizer: AdamWState
}

export interface TrainingProgress {
  readonly epoch: number
  readonly step: number
  readonly totalSteps: number
  /** Mean loss per token (LM) or per sample (classification) over this step's micro-batches. */
  readonly loss: number
  readonly learningRate: number
  readonly gradNorm: number
  readonly samplesPerSecond: number
  readonly elapsedMs: number
}

export interface TrainingHooks {
  readonly onProgress?: ((progress: TrainingProgress) => void) | undefined
  readonly onCheckpoint?: ((checkpoint: TrainingCheckpoint) => void) | undefined
}

export interface TrainingResult {
  readonly weights: LoraWeights
  readonly head?: ClassifierHead
  readonly steps: number
  readonly finalLoss: number
  readonly samples: number
  readonly durationMs: number
  readonly losses: ReadonlyArray<number>
}

const HEAD_WEIGHT = "head.weight"
const HEAD_BIAS = "head.bias"

/** Modules' A [rank, in] and B [out, rank]: A uniform in ±1/√in (kaiming_uniform with a = √5, as PEFT), B zero. */
const initialModules = (model: OnnxModel, modules: ReadonlyArray<string>, rank: number, random: SeededRandom): Record<string, LoraModule> => {
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

  constructor(model: OnnxModel, config: MicroLoRAConfig, objective: Objective, start?: { readonly weights?: LoraWeights; readonly head?: ClassifierHead; readonly optimizer?: AdamWState }) {
    this.config = resolveConfig(model, config)
    this.#model = model
    this.#objective = objective
    const { rank, alpha, dropout, targetModules, seed } = this.config
    this.#scale = alpha / rank
    const graph = trainingGraph(model, targetModules, rank, dropout)
    this.program = compile(graph, targetModules.flatMap((module) => [adapterInputNames(module).A, adapterInputNames(module).B]))
    if (start?.weights !== undefined) {
      const weights = start.weights
      check(weights.rank === rank && weights.alpha === alpha, `the starting adapter has rank ${weights.rank} / alpha ${weights.alpha}, the config ${rank} / ${alpha}`)
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
      check(Number.isInteger(objective.classes) && objective.classes >= 2, `a classifier needs 2 or more classes (not ${objective.classes})`)
      const output = model.graph.outputs[0]
      const hidden = output?.type?.tensorType?.shape?.at(-1)?.value
      check(hidden !== undefined && output?.type?.tensorType?.elemType === DataType.FLOAT, "a classifier needs a float output [batch, sequence, hidden] with a fixed hidden size")
      const head = start?.head ?? { hidden: hidden!, classes: objective.classes, weight: new Float32Array(hidden! * objective.classes), bias: new Float32Array(objective.classes) }
      check(head.hidden === hidden && head.classes === objective.classes, `the starting head is [${head.hidden} -> ${head.classes}], the model needs [${hidden} -> ${objective.classes}]`)
      this.#head = { ...head, weight: head.weight.slice(), bias: head.bias.slice() }
      this.#parameters.set(HEAD_WEIGHT, this.#head.weight)
      this.#parameters.set(HEAD_BIAS, this.#head.bias)
    }
    this.#optimizer = new AdamW(
      { learningRate: this.config.learningRate, betas: this.config.betas, epsilon: this.config.epsilon, weightDecay: this.config.weightDecay },
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
    const modules = Object.fromEntries(Object.entries(this.#modules).map(([module, factors]) => [module, { ...factors, A: factors.A.slice(), B: factors.B.slice() }]))
    return { rank: this.config.rank, alpha: this.config.alpha, modules }
  }

  head(): ClassifierHead | undefined {
    const head = this.#head
    return head === undefined ? undefined : { ...head, weight: head.weight.slice(), bias: head.bias.slice() }
  }

  checkpoint(): TrainingCheckpoint {
    const head = this.head()
    return { step: this.#optimizer.step, weights: this.weights(), ...(head === undefined ? {} : { head }), optimizer: this.#optimizer.state() }
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

  #output(activations: Activations): FloatTensor {
    return activations.values.get(this.program.outputs[0]!) as FloatTensor
  }

  /**
   * Loss of one micro-batch and the gradients of every trainable parameter (PEFT layout), each scaled
   * by `gradScale` (1 / the number of units the optimizer step averages over).
   */
  lossAndGrads(samples: ReadonlyArray<Sample>, gradScale: number, random: () => number): { total: number; count: number; grads: Map<string, Float32Array> } {
    const rows = samples.map((sample) => sample.ids)
    const activations = this.#run(rows, true, random)
    const output = this.#output(activations)
    const seeds = new Map<string, Float32Array>()
    const grads = new Map<string, Float32Array>()
    let total: number
    let count: number
    if (this.#objective.kind === "causal-lm") {
      const loss = nextTokenLoss(output, rows, gradScale)
      total = loss.total
      count = loss.count
      seeds.set(this.program.outputs[0]!, loss.grad!)
    } else {
      const head = this.#head!
      const labels = (samples as ReadonlyArray<ClassificationSample>).map((sample) => sample.label)
      const pooled = meanPool(output, rows)
      const { total: summed, residual } = crossEntropy(headLogits(head, pooled, rows.length), labels, head.classes)
      total = summed
      count = rows.length
      const { dWeight, dBias, dPooled } = headBackward(head, pooled, residual, rows.length, gradScale)
      grads.set(HEAD_WEIGHT, dWeight)
      grads.set(HEAD_BIAS, dBias)
      const [batch, length, width] = output.dims as [number, number, number]
      const dHidden = new Float32Array(output.data.length)
      for (let b = 0; b < batch; b++) {
        const used = Math.min(length, rows[b]!.length)
        for (let t = 0; t < used; t++) for (let h = 0; h < width; h++) dHidden[(b * length + t) * width + h] = dPooled[b * width + h]! / used
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
    return { total, count, grads }
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
      const loss = nextTokenLoss(this.#output(this.#run(rows, false)), rows)
      total += loss.total
      count += loss.count
    }
    return total / Math.max(1, count)
  }

  /** Pooled features of sequences through the current adapter (no dropout), [n, hidden]. */
  features(samples: ReadonlyArray<{ readonly ids: ReadonlyArray<number> }>, batchSize = this.config.batchSize): Array<Float32Array> {
    const features: Array<Float32Array> = []
    for (let start = 0; start < samples.length; start += batchSize) {
      const rows = samples.slice(start, start + batchSize).map((sample) => sample.ids)
      const output = this.#output(this.#run(rows, false))
      const pooled = meanPool(output, rows)
      const width = output.dims[2]!
      for (let b = 0; b < rows.length; b++) features.push(pooled.slice(b * width, (b + 1) * width))
    }
    return features
  }

  /** Predicted class of each sequence. */
  classify(samples: ReadonlyArray<{ readonly ids: ReadonlyArray<number> }>, batchSize = this.config.batchSize): Array<number> {
    const head = this.#head
    check(head !== undefined, "classify needs a classification objective")
    return this.features(samples, batchSize).map((pooled) => argmax(headLogits(head!, pooled, 1)))
  }
}

export const argmax = (values: ArrayLike<number>): number => {
  let best = 0
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i
  return best
}

/** Seeded Fisher-Yates permutation of 0..n-1. */
const permutation = (n: number, random: SeededRandom): Array<number> => {
  const order = Array.from({ length: n }, (_, i) => i)
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random.uniform() * (i + 1))
    ;[order[i], order[j]] = [order[j]!, order[i]!]
  }
  return order
}

/** Optimizer steps of a run over `samples` under `config`. */
export const plannedSteps = (config: ResolvedConfig, samples: number): number => {
  const perEpoch = Math.ceil(Math.ceil(samples / config.batchSize) / config.gradientAccumulationSteps)
  const all = perEpoch * config.epochs
  return config.maxSteps === undefined ? all : Math.min(all, config.maxSteps)
}

/**
 * Trains over `samples` for the configured epochs (each in a seeded order), one optimizer step per
 * `gradientAccumulationSteps` micro-batches, with progress after every step and checkpoints every
 * `checkpointEvery`. A trainer started from a checkpoint skips the steps it has done; the shuffles and
 * each step's dropout draws are functions of the seed and the step, so the resumed run continues
 * exactly as the uninterrupted one would have.
 */
export const trainAdapter = (trainer: LoraTrainer, samples: ReadonlyArray<Sample>, hooks: TrainingHooks = {}): TrainingResult => {
  const config = trainer.config
  check(samples.length > 0, "no training samples")
  const totalSteps = plannedSteps(config, samples.length)
  const warmup = config.warmupRatio === undefined ? config.warmupSteps : Math.round(config.warmupRatio * totalSteps)
  const shuffles = new SeededRandom(config.seed + 1)
  const began = performance.now()
  const losses: Array<number> = []
  let step = 0
  let seen = 0
  let finalLoss = Number.NaN
  const micro = config.batchSize
  const accumulation = config.gradientAccumulationSteps
  const perSequence = trainer.objective.kind === "classification"
  for (let epoch = 0; epoch < config.epochs && step < totalSteps; epoch++) {
    const order = permutation(samples.length, shuffles)
    const batches: Array<Array<Sample>> = []
    for (let start = 0; start < order.length; start += micro) batches.push(order.slice(start, start + micro).map((index) => samples[index]!))
    for (let first = 0; first < batches.length && step < totalSteps; first += accumulation) {
      const group = batches.slice(first, first + accumulation)
      if (step < trainer.optimizerStep) {
        step++
        continue
      }
      // The loss is a mean over the step's tokens (LM) or sequences (classifier), whatever the micro-batching.
      const units = group.reduce((total, batch) => total + batch.reduce((sum, sample) => sum + (perSequence ? 1 : Math.max(0, sample.ids.length - 1)), 0), 0)
      const dropout = new SeededRandom(config.seed * 1_000_003 + step + 7)
      const random = () => dropout.uniform()
      const summed = new Map<string, Float32Array>()
      let total = 0
      let count = 0
      for (const batch of group) {
        const result = trainer.lossAndGrads(batch, 1 / Math.max(1, units), random)
        total += result.total
        count += result.count
        for (const [name, grad] of result.grads) {
          const into = summed.get(name)
          if (into === undefined) summed.set(name, grad)
          else for (let i = 0; i < grad.length; i++) into[i]! += grad[i]!
        }
        seen += batch.length
      }
      const learningRate = learningRateAt(config.schedule, config.learningRate, step, totalSteps, warmup)
      const gradNorm = trainer.applyGradients(summed, learningRate)
      step++
      finalLoss = total / Math.max(1, count)
      losses.push(finalLoss)
      const elapsedMs = performance.now() - began
      hooks.onProgress?.({ epoch, step, totalSteps, loss: finalLoss, learningRate, gradNorm, samplesPerSecond: (seen / elapsedMs) * 1000, elapsedMs })
      if (config.checkpointEvery > 0 && step % config.checkpointEvery === 0 && step < totalSteps) hooks.onCheckpoint?.(trainer.checkpoint())
    }
  }
  const head = trainer.head()
  return { weights: trainer.weights(), ...(head === undefined ? {} : { head }), steps: step, finalLoss, samples: samples.length, durationMs: performance.now() - began, losses }
}

/**
 * A linear probe: multinomial logistic regression on fixed features, full-batch AdamW for `epochs`
 * passes from a zero head. The baseline a classification adapter has to beat.
 */
export const fitLinearProbe = (
  features: ReadonlyArray<Float32Array>,
  labels: ReadonlyArray<number>,
  classes: number,
  options: { readonly epochs?: number; readonly learningRate?: number; readonly weightDecay?: number } = {}
): ClassifierHead => {
  check(features.length > 0 && features.length === labels.length, "a probe needs one label per feature vector")
  const hidden = features[0]!.length
  const head: ClassifierHead = { hidden, classes, weight: new Float32Array(hidden * classes), bias: new Float32Array(classes) }
  const pooled = new Float32Array(features.length * hidden)
  features.forEach((feature, index) => pooled.set(feature, index * hidden))
  const optimizer = new AdamW({ learningRate: options.learningRate ?? 1e-2, betas: [0.9, 0.999], epsilon: 1e-8, weightDecay: options.weightDecay ?? 0.01 })
  const parameters = new Map([[HEAD_WEIGHT, head.weight], [HEAD_BIAS, head.bias]])
  for (let epoch = 0; epoch < (options.epochs ?? 300); epoch++) {
    const { residual } = crossEntropy(headLogits(head, pooled, features.length), labels, classes)
    const { dWeight, dBias } = headBackward(head, pooled, residual, features.length, 1 / features.length)
    optimizer.update(parameters, new Map([[HEAD_WEIGHT, dWeight], [HEAD_BIAS, dBias]]), options.learningRate ?? 1e-2)
  }
  return head
}

/** Predicted classes of fixed features under a head. */
export const predictWithHead = (head: ClassifierHead, features: ReadonlyArray<Float32Array>): Array<number> =>
  features.map((feature) => argmax(headLogits(head, feature, 1)))
