/**
 * The linear classification head an encoder's adapter trains with (like PEFT's `modules_to_save`): its
 * logits, its softmax cross-entropy gradients, and a linear probe that fits one on fixed features alone.
 */
import { softmaxInto } from "../../validate/Metrics.js"
import { AdamW } from "./AdamW.js"
import { check } from "./TrainingConfig.js"

/** A linear classification head [hidden, classes] with its bias. */
export interface ClassifierHead {
  readonly hidden: number
  readonly classes: number
  readonly weight: Float32Array
  readonly bias: Float32Array
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

/**
 * Softmax cross-entropy of each row's logits against its label: each row's loss, their sum and
 * (p - onehot). With `rowWeights`, the sum and each row's residual are scaled by the row's weight
 * (prioritized replay's importance-sampling weights); `rowLosses` stay unweighted.
 */
export const crossEntropy = (
  logits: Float32Array,
  labels: ReadonlyArray<number>,
  classes: number,
  rowWeights?: ArrayLike<number>
) => {
  let total = 0
  const residual = new Float32Array(logits.length)
  const rowLosses = new Float64Array(labels.length)
  labels.forEach((label, b) => {
    const start = b * classes
    const loss = softmaxInto(logits, start, classes, residual) - logits[start + label]!
    residual[start + label]! -= 1
    rowLosses[b] = loss
    const weight = rowWeights?.[b] ?? 1
    total += weight * loss
    if (weight !== 1) { for (let c = 0; c < classes; c++) residual[start + c]! *= weight }
  })
  return { total, residual, rowLosses }
}

/** The head's logistic-regression update from pooled features: its gradients and the features' gradient. */
export const headBackward = (
  head: ClassifierHead,
  pooled: Float32Array,
  residual: Float32Array,
  batch: number,
  scale: number
) => {
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

export const HEAD_WEIGHT = "head.weight"
export const HEAD_BIAS = "head.bias"

export const argmax = (values: ArrayLike<number>): number => {
  let best = 0
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i
  return best
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
  const head: ClassifierHead = {
    hidden,
    classes,
    weight: new Float32Array(hidden * classes),
    bias: new Float32Array(classes)
  }
  const pooled = new Float32Array(features.length * hidden)
  features.forEach((feature, index) => pooled.set(feature, index * hidden))
  const optimizer = new AdamW({
    learningRate: options.learningRate ?? 1e-2,
    betas: [0.9, 0.999],
    epsilon: 1e-8,
    weightDecay: options.weightDecay ?? 0.01
  })
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
