/**
 * Forgetting, measured for `npm run bench -- learning`: an adapter (A, B and the head) trained on task A,
 * then on task B plainly or with EWC's penalty from task A's Fisher diagonal, task A's accuracy after
 * each. λ is chosen on validation sets of A and B, disjoint from the test sets that are reported: from
 * 1/mean F (each parameter's stiffness about 1 on average) times 0.1, 1, 10 and 100, the λ whose runs
 * have the best mean of A's and B's validation accuracy after B (a λ judged on A alone would always be
 * the largest: no learning of B forgets nothing). Every λ's test figures are shown; training on B is
 * repeated over three seeds because one run's figure moves by several points with the order of B's
 * samples.
 */
import { ewcPenalty, fisherDiagonal, snapshotParameters } from "../../src/compute/learning/Ewc.js"
import type { AdaptedModel } from "../../src/compute/learning/Updates.js"
import { LoraTrainer } from "../../src/compute/lora/train/LoraTrainer.js"
import type { ClassificationSample } from "../../src/compute/lora/train/Objectives.js"
import type { MicroLoRAConfig } from "../../src/compute/lora/train/TrainingConfig.js"
import { quadraticPenalty, trainAdapter } from "../../src/compute/lora/train/TrainingLoop.js"
import type { OnnxModel } from "../../src/compute/onnx/OnnxModel.js"
import { makeTask, objective } from "./Federation.js"
import { met, percent, table } from "./Printing.js"

export const measureForgetting = async (
  model: OnnxModel,
  config0: MicroLoRAConfig,
  setup: { readonly ewcEpochs: number },
  sets: {
    readonly aTrain: ReadonlyArray<ClassificationSample>
    readonly aTest: ReadonlyArray<ClassificationSample>
    readonly aValidation: ReadonlyArray<ClassificationSample>
    readonly bTrain: ReadonlyArray<ClassificationSample>
    readonly bTest: ReadonlyArray<ClassificationSample>
    readonly bValidation: ReadonlyArray<ClassificationSample>
  }
) => {
  const { aTest, aTrain, aValidation, bTest, bTrain, bValidation } = sets
  console.log(
    `\n### EWC: task A (easy-ham-1 vs spam-1) then task B (hard-ham-1 vs spam-2); A and B factors and the head trained, ${setup.ewcEpochs} epochs each; train ${aTrain.length}/${bTrain.length}, test ${aTest.length}/${bTest.length}, validation ${aValidation.length}/${bValidation.length}`
  )
  const config = { ...config0, epochs: setup.ewcEpochs }
  const task = await makeTask(model, config, aTest)
  const trainerA = new LoraTrainer(model, config, objective)
  trainAdapter(trainerA, aTrain)
  const afterA: AdaptedModel = { weights: trainerA.weights(), head: trainerA.head()! }
  const fisher = fisherDiagonal(trainerA, aTrain)
  const anchor = snapshotParameters(trainerA)
  let sum = 0
  let count = 0
  for (const values of Object.values(fisher)) {
    for (const value of values) sum += value
    count += values.length
  }
  const lambda0 = count / sum
  const seeds = [1, 2, 3].map((offset) => config0.seed! + offset)
  const onB = (lambda: number | undefined, seed: number) => {
    const trainer = new LoraTrainer(model, { ...config, seed }, objective, {
      weights: afterA.weights,
      head: afterA.head!
    })
    trainAdapter(
      trainer,
      bTrain,
      lambda === undefined ? {} : { regularizer: quadraticPenalty(ewcPenalty(anchor, fisher, lambda)) }
    )
    return { weights: trainer.weights(), head: trainer.head()! }
  }
  const mean = (values: ReadonlyArray<number>) => values.reduce((x, y) => x + y, 0) / values.length
  /** Task A and B accuracy (test and validation) after training on B, one run per seed (the order of B's samples). */
  const onBSeeds = async (lambda: number | undefined) => {
    const a: Array<number> = []
    const b: Array<number> = []
    const validation: Array<number> = []
    for (const seed of seeds) {
      const trained = onB(lambda, seed)
      a.push(await task.evaluate(trained, aTest))
      b.push(await task.evaluate(trained, bTest))
      validation.push(((await task.evaluate(trained, aValidation)) + (await task.evaluate(trained, bValidation))) / 2)
    }
    return { a: mean(a), b: mean(b), validation: mean(validation), spread: a.map(percent).join(" / ") }
  }
  const aBefore = await task.evaluate(afterA, aTest)
  const bBefore = await task.evaluate(afterA, bTest)
  const plain = await onBSeeds(undefined)
  const rows: Array<Array<string>> = [["after A", percent(aBefore), "", percent(bBefore), "", ""]]
  rows.push([
    "then B, plain fine-tuning",
    percent(plain.a),
    plain.spread,
    percent(plain.b),
    percent(plain.validation),
    ""
  ])
  const lost = aBefore - plain.a
  const runs: Array<{ readonly lambda: number; readonly kept: number; readonly validation: number }> = []
  for (const factor of [0.1, 1, 10, 100]) {
    const lambda = lambda0 * factor
    const ewc = await onBSeeds(lambda)
    const kept = lost > 0 ? (ewc.a - plain.a) / lost : Number.NaN
    runs.push({ lambda, kept, validation: ewc.validation })
    rows.push([
      `then B with EWC λ=${lambda.toExponential(2)}${factor === 1 ? " (1/mean F)" : ""}`,
      percent(ewc.a),
      ewc.spread,
      percent(ewc.b),
      percent(ewc.validation),
      Number.isNaN(kept) ? "-" : `${(100 * kept).toFixed(0)}%`
    ])
  }
  const chosen = runs.reduce((best, run) => (run.validation > best.validation ? run : best))
  const judged = chosen.kept
  await task.release()
  console.log(
    `Fisher diagonal from ${aTrain.length} per-sample gradients; mean F = ${
      (sum / count).toExponential(2)
    }; λ chosen on validation (mean of A's and B's): ${
      chosen.lambda.toExponential(2)
    }; training on B repeated with seeds ${seeds.join(", ")} (B's sample order), means shown`
  )
  table(
    ["", "task A acc % (mean)", "task A per seed", "task B acc % (mean)", "validation A+B %", "share of A's loss kept"],
    rows
  )
  console.log(
    lost > 0
      ? `  target: EWC (λ = ${
        chosen.lambda.toExponential(2)
      }, chosen on validation) keeps ≥ 50% of what plain fine-tuning loses on A (${percent(lost)} points): ${
        (100 * judged).toFixed(0)
      }%: ${met(judged >= 0.5)}`
      : `  target: not applicable: plain fine-tuning on B lost nothing on A (${
        percent(-lost)
      } points gained), so there is no forgetting to prevent: MISSED (no measurement)`
  )
}
