/**
 * AdamW (Loshchilov & Hutter: weight decay applied to the weights, not mixed into the gradient, as
 * torch.optim.AdamW does), learning-rate schedules with linear warmup (the formulas of transformers'
 * get_{constant,linear,cosine}_schedule_with_warmup), and clipping by the global gradient norm.
 */

export type Schedule = "cosine" | "linear" | "constant"

export interface AdamWOptions {
  readonly learningRate: number
  readonly betas: readonly [number, number]
  readonly epsilon: number
  readonly weightDecay: number
}

/** The optimizer's state, serializable into a checkpoint. */
export interface AdamWState {
  readonly step: number
  readonly firstMoments: Readonly<Record<string, Float32Array>>
  readonly secondMoments: Readonly<Record<string, Float32Array>>
}

/**
 * One AdamW update of `theta` in place at optimizer step `step` (1-based): the moments move toward the
 * gradient, the weights decay by learningRate · weightDecay, then step by the bias-corrected ratio.
 */
export const adamWUpdate = (
  theta: Float32Array,
  gradient: Float32Array,
  moment: Float32Array,
  variance: Float32Array,
  step: number,
  learningRate: number,
  options: Omit<AdamWOptions, "learningRate">
): void => {
  const [beta1, beta2] = options.betas
  const correction1 = 1 - beta1 ** step
  const correction2 = 1 - beta2 ** step
  const stepSize = learningRate / correction1
  const decay = 1 - learningRate * options.weightDecay
  const epsilon = options.epsilon
  for (let i = 0; i < theta.length; i++) {
    const g = gradient[i]!
    const m = (moment[i] = beta1 * moment[i]! + (1 - beta1) * g)
    const v = (variance[i] = beta2 * variance[i]! + (1 - beta2) * g * g)
    theta[i] = theta[i]! * decay - (stepSize * m) / (Math.sqrt(v / correction2) + epsilon)
  }
}

export class AdamW {
  #step = 0
  readonly #first = new Map<string, Float32Array>()
  readonly #second = new Map<string, Float32Array>()

  constructor(readonly options: AdamWOptions, state?: AdamWState) {
    if (state !== undefined) {
      this.#step = state.step
      for (const [name, moment] of Object.entries(state.firstMoments)) this.#first.set(name, moment.slice())
      for (const [name, moment] of Object.entries(state.secondMoments)) this.#second.set(name, moment.slice())
    }
  }

  get step(): number {
    return this.#step
  }

  /** One update of every parameter at learning rate `learningRate` (the schedule's value for this step). */
  update(
    parameters: ReadonlyMap<string, Float32Array>,
    grads: ReadonlyMap<string, Float32Array>,
    learningRate: number
  ): void {
    this.#step++
    for (const [name, value] of parameters) {
      const grad = grads.get(name)
      if (grad === undefined) continue
      let first = this.#first.get(name)
      let second = this.#second.get(name)
      if (first === undefined || second === undefined) {
        first = new Float32Array(value.length)
        second = new Float32Array(value.length)
        this.#first.set(name, first)
        this.#second.set(name, second)
      }
      adamWUpdate(value, grad, first, second, this.#step, learningRate, this.options)
    }
  }

  state(): AdamWState {
    return {
      step: this.#step,
      firstMoments: Object.fromEntries([...this.#first].map(([name, moment]) => [name, moment.slice()])),
      secondMoments: Object.fromEntries([...this.#second].map(([name, moment]) => [name, moment.slice()]))
    }
  }
}

/** The learning rate at optimizer step `step` (0-based) of `totalSteps`. */
export const learningRateAt = (
  schedule: Schedule,
  baseRate: number,
  step: number,
  totalSteps: number,
  warmupSteps: number
): number => {
  if (step < warmupSteps) return (baseRate * step) / Math.max(1, warmupSteps)
  const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps)
  switch (schedule) {
    case "constant":
      return baseRate
    case "linear":
      return baseRate * Math.max(0, 1 - progress)
    case "cosine":
      return baseRate * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)))
  }
}

/** The global L2 norm of the gradients; above `maxNorm` they are scaled down to it in place. */
export const clipGradNorm = (grads: ReadonlyMap<string, Float32Array>, maxNorm: number): number => {
  let squares = 0
  for (const grad of grads.values()) for (let i = 0; i < grad.length; i++) squares += grad[i]! * grad[i]!
  const norm = Math.sqrt(squares)
  if (maxNorm > 0 && norm > maxNorm) {
    const factor = maxNorm / (norm + 1e-6)
    for (const grad of grads.values()) for (let i = 0; i < grad.length; i++) grad[i]! *= factor
  }
  return norm
}
