/**
 * Learning together (issue 17), measured in one process on real data: SpamAssassin split across 8 peers
 * non-IID (Dirichlet α = 0.3 over labels), tiny-encoder with a rank-4 adapter in its last layer and a
 * classifier head. Prints accuracy per round for local training, centralized training, FedAvg, FedProx
 * and gossip; the final accuracy of each aggregator with 2 of 8 peers attacking; task A's accuracy
 * after task B with and without EWC; the bytes a peer sends per round. Targets are printed beside the
 * figures, with MISSED when a figure misses; the setup they hold for (seeds, splits, steps) is printed
 * first. Sensitivity rows (FedAvg with fewer local epochs, gossip with more mixing) are shown beside the
 * judged configuration, never in its place.
 *
 * `--quick` shrinks everything for a smoke run (its figures mean nothing).
 */
import type { AggregationRule } from "../src/compute/learning/Aggregators.js"
import { describeRule } from "../src/compute/learning/Aggregators.js"
import { ewcPenalty, fisherDiagonal, snapshotParameters } from "../src/compute/learning/Ewc.js"
import type { AdaptedModel } from "../src/compute/learning/Updates.js"
import { SeededRandom } from "../src/compute/lora/Adapter.js"
import { LoraTrainer } from "../src/compute/lora/train/LoraTrainer.js"
import type { ClassificationSample } from "../src/compute/lora/train/Objectives.js"
import { classificationSamples } from "../src/compute/lora/train/TextData.js"
import type { MicroLoRAConfig } from "../src/compute/lora/train/TrainingConfig.js"
import { quadraticPenalty, trainAdapter } from "../src/compute/lora/train/TrainingLoop.js"
import type { Email } from "../test/support/Corpora.js"
import { spamAssassin } from "../test/support/Corpora.js"
import { messageText, referenceModel } from "../test/support/LoraTasks.js"
import { report } from "./Report.js"
import type { Attack, Peer, Task, UpdateCache } from "./support/Federation.js"
import {
  dirichletSplit,
  makeTask,
  objective,
  runDenseFedAvg,
  runFederated,
  runGossip,
  shuffled,
  trainEpochs
} from "./support/Federation.js"
import { cacheBelowLayer, maxDifference, pooledOutputs } from "./support/LayerCache.js"

const quick = process.argv.includes("--quick")

const SETUP = {
  peers: 8,
  dirichletAlpha: 0.3,
  splitSeed: 17,
  minimumPerPeer: quick ? 3 : 10,
  trainPerClass: quick ? 40 : 240,
  testPerClass: quick ? 30 : 200,
  maxTokens: 32,
  rounds: quick ? 2 : 8,
  localEpochs: 2,
  gossipFanout: 3,
  attackRounds: quick ? 2 : 5,
  attackLocalEpochs: 1,
  attackerSeed: 23,
  fedProxMu: 0.1,
  trimmedBeta: 0.25,
  ewcTrainPerClass: quick ? 20 : 60,
  ewcTestPerClass: quick ? 20 : 100,
  ewcEpochs: quick ? 2 : 6,
  runSeed: 101
} as const

const CONFIG: MicroLoRAConfig = {
  rank: 4,
  alpha: 8,
  learningRate: 1e-2,
  weightDecay: 0,
  schedule: "constant",
  warmupSteps: 0,
  batchSize: 16,
  maxGradNorm: 1,
  seed: 11
}

const percent = (value: number) => (100 * value).toFixed(1)
const met = (ok: boolean) => (ok ? "met" : "MISSED")
const began = performance.now()
const elapsed = () => `${((performance.now() - began) / 1000).toFixed(0)} s`

/** `count` items spread evenly over the list (so every group of the corpus is represented), from `offset`. */
const spread = <T>(items: ReadonlyArray<T>, count: number, offset: number): Array<T> => {
  const stride = items.length / (2 * count)
  return Array.from({ length: count }, (_, k) => items[Math.floor((2 * k + offset) * stride)]!)
}

const labelled = (emails: ReadonlyArray<Email>) =>
  emails.map((email) => ({ text: messageText(email.subject, email.body), label: email.spam ? 1 : 0 }))

const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>) => {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) => cells.map((cell, column) => cell.padStart(widths[column]!)).join("  ")
  console.log(line(header))
  for (const row of rows) console.log(line(row))
}

const firstReaching = (accuracies: ReadonlyArray<number>, target: number) => {
  const index = accuracies.findIndex((value) => value >= target - 1e-9)
  return index < 0 ? undefined : index + 1
}

export const run = async () => {
  const { model: full, tokenizer } = referenceModel("tiny-encoder")
  const emails = spamAssassin()
  const ham = emails.filter((email) => !email.spam)
  const spam = emails.filter((email) => email.spam)
  const encode = (items: ReadonlyArray<{ text: string; label: number }>) =>
    classificationSamples(tokenizer, items, SETUP.maxTokens)
  const pool = encode(labelled([...spread(ham, SETUP.trainPerClass, 0), ...spread(spam, SETUP.trainPerClass, 0)]))
  const test = encode(labelled([...spread(ham, SETUP.testPerClass, 1), ...spread(spam, SETUP.testPerClass, 1)]))
  const group = (name: string) => emails.filter((email) => email.group === name)
  const task = (hamGroup: string, spamGroup: string, perClass: number, offset: number) =>
    encode(labelled([...spread(group(hamGroup), perClass, offset), ...spread(group(spamGroup), perClass, offset)]))
  const ewcSets = [
    task("easy-ham-1", "spam-1", SETUP.ewcTrainPerClass, 0),
    task("easy-ham-1", "spam-1", SETUP.ewcTestPerClass, 1),
    task("hard-ham-1", "spam-2", SETUP.ewcTrainPerClass, 0),
    task("hard-ham-1", "spam-2", SETUP.ewcTestPerClass, 1)
  ]
  console.log(`setup: ${JSON.stringify(SETUP)}`)
  console.log(
    `adapter config: ${JSON.stringify(CONFIG)}; FFA-LoRA (A frozen at seed ${CONFIG.seed}, shared) unless said`
  )

  // The frozen layers 0-2 computed once per sample; the adapter lives in layer 3.
  const cached = cacheBelowLayer(full, "/layers.3/", [pool, test, ...ewcSets])
  const [cachedPool, cachedTest, aTrain, aTest, bTrain, bTest] = cached.sets as Array<Array<ClassificationSample>>
  const probe = new LoraTrainer(cached.model, { ...CONFIG, seed: 5 }, objective)
  const probeWeights = probe.weights()
  const random = new SeededRandom(5)
  for (const module of Object.values(probeWeights.modules)) {
    for (let i = 0; i < module.B.length; i++) module.B[i] = (random.uniform() * 2 - 1) * 0.5
  }
  const fullAdapted = pooledOutputs(full, probeWeights, pool.slice(0, 4))
  const check = maxDifference(fullAdapted, pooledOutputs(cached.model, probeWeights, cachedPool!.slice(0, 4)))
  const effect = maxDifference(fullAdapted, pooledOutputs(full, undefined, pool.slice(0, 4)))
  console.log(
    `cache: layers 0-2 cached below ${cached.cached} (${cached.rows} rows); adapted modules: ${
      Object.keys(probeWeights.modules).join(", ")
    }; pooled output of the full vs the cached model, a random adapter merged in both, 4 samples: max |difference| ${
      check.toExponential(2)
    } (the adapter itself moves it by up to ${effect.toFixed(3)}) (${elapsed()})`
  )

  const { parts, attempts } = dirichletSplit(
    cachedPool!,
    SETUP.peers,
    SETUP.dirichletAlpha,
    SETUP.splitSeed,
    SETUP.minimumPerPeer
  )
  const peers: Array<Peer> = parts.map((samples, index) => ({ id: `peer-${index}`, samples }))
  console.log(
    `split: Dirichlet(${SETUP.dirichletAlpha}) over labels, seed ${SETUP.splitSeed}, ${attempts} draw(s); peers (ham/spam): ${
      peers.map((peer) => {
        const spamCount = peer.samples.filter((sample) => sample.label === 1).length
        return `${peer.samples.length - spamCount}/${spamCount}`
      }).join(" ")
    }; held-out test: ${cachedTest!.length} (${SETUP.testPerClass}/${SETUP.testPerClass})`
  )
  const main = await makeTask(cached.model, CONFIG, cachedTest!)
  await convergence(main, peers, [...cachedPool!])
  await attacks(main, peers)
  await main.release()
  await forgetting(cached.model, aTrain!, aTest!, bTrain!, bTest!)
  console.log(`\nlearning bench finished in ${elapsed()}`)
}

const convergence = async (task: Task, peers: ReadonlyArray<Peer>, all: ReadonlyArray<ClassificationSample>) => {
  const rounds = SETUP.rounds
  const gossipRounds = Math.ceil(1.2 * rounds)
  console.log(`\n### accuracy per round on the held-out set, non-IID (${rounds} rounds; gossip ${gossipRounds})`)
  const startAccuracy = await task.evaluate(task.initial)
  const epochs = SETUP.localEpochs
  console.log(
    `  every peer trains ${epochs} local epochs per round; local-only and centralized training run ${epochs} epochs per round (the same passes over the data)`
  )
  // Models after each round's worth of epochs.
  const perRound = (models: ReadonlyArray<AdaptedModel>) => models.filter((_, epoch) => (epoch + 1) % epochs === 0)
  const local: Array<number> = new Array<number>(rounds).fill(0)
  for (const [index, peer] of peers.entries()) {
    const models = perRound(trainEpochs(task, peer.samples, rounds * epochs, SETUP.runSeed + index))
    for (const [round, model] of models.entries()) local[round]! += (await task.evaluate(model)) / peers.length
  }
  console.log(`  local only done (${elapsed()})`)
  const central: Array<number> = []
  for (
    const model of perRound(
      trainEpochs(task, shuffled(all, new SeededRandom(SETUP.runSeed)), rounds * epochs, SETUP.runSeed)
    )
  ) {
    central.push(await task.evaluate(model))
  }
  console.log(`  centralized done (${elapsed()})`)
  const fedAvg = await runFederated(task, peers, {
    rounds,
    rule: { kind: "fedavg" },
    seed: SETUP.runSeed,
    localEpochs: epochs,
    everyRound: true
  })
  console.log(`  FedAvg done (${elapsed()})`)
  const fedProx = await runFederated(task, peers, {
    rounds,
    rule: { kind: "fedavg" },
    mu: SETUP.fedProxMu,
    seed: SETUP.runSeed,
    localEpochs: epochs,
    everyRound: true
  })
  console.log(`  FedProx done (${elapsed()})`)
  const gossip = await runGossip(task, peers, {
    rounds: gossipRounds,
    fanout: SETUP.gossipFanout,
    seed: SETUP.runSeed,
    localEpochs: epochs
  })
  console.log(`  gossip done (${elapsed()})`)
  const dense = await runDenseFedAvg(task, peers, rounds, SETUP.runSeed, epochs)
  console.log(`  FedAvg dense + re-factor done (${elapsed()})`)
  // Sensitivity, not judged: less local drift, and more mixing per round.
  const fedAvgOneEpoch = await runFederated(task, peers, {
    rounds,
    rule: { kind: "fedavg" },
    seed: SETUP.runSeed,
    localEpochs: 1,
    everyRound: true
  })
  const gossipTwoSteps = await runGossip(task, peers, {
    rounds: gossipRounds,
    fanout: SETUP.gossipFanout,
    seed: SETUP.runSeed,
    localEpochs: epochs,
    stepsPerRound: 2
  })
  console.log(`  sensitivity runs done (${elapsed()})`)
  console.log(`start (seeded A, B = 0, zero head): ${percent(startAccuracy)}%`)
  table(
    [
      "round",
      "local (mean)",
      "centralized",
      "FedAvg",
      `FedProx μ=${SETUP.fedProxMu}`,
      `gossip k=${SETUP.gossipFanout}`,
      "FedAvg dense+refactor",
      "refactor error"
    ],
    Array.from({ length: gossipRounds }, (_, round) => [
      `${round + 1}`,
      round < rounds ? percent(local[round]!) : "",
      round < rounds ? percent(central[round]!) : "",
      round < rounds ? percent(fedAvg.accuracies[round]!) : "",
      round < rounds ? percent(fedProx.accuracies[round]!) : "",
      percent(gossip.accuracies[round]!),
      round < rounds ? percent(dense.accuracies[round]!) : "",
      round < rounds ? dense.refactorErrors[round]!.toExponential(2) : ""
    ])
  )
  const fedAvgFinal = fedAvg.accuracies.at(-1)!
  const centralFinal = central.at(-1)!
  report("FedAvg final accuracy vs centralized", "%", 100 * fedAvgFinal, 100 * centralFinal, "centralized")
  console.log(
    `  target: FedAvg within 1 point of centralized: ${(100 * (fedAvgFinal - centralFinal)).toFixed(1)} points: ${
      met(fedAvgFinal >= centralFinal - 0.01)
    }`
  )
  const reached = firstReaching(gossip.accuracies, fedAvgFinal)
  console.log(
    `  target: gossip reaches FedAvg's final ${percent(fedAvgFinal)}% within ${(1.2 * rounds).toFixed(1)} rounds: ${
      reached === undefined
        ? `not in ${gossipRounds} rounds (best ${percent(Math.max(...gossip.accuracies))}%)`
        : `round ${reached}`
    }: ${met(reached !== undefined && reached <= 1.2 * rounds)}`
  )
  report("FedProx final accuracy vs FedAvg", "%", 100 * fedProx.accuracies.at(-1)!, 100 * fedAvgFinal, "FedAvg")
  console.log(
    "sensitivity (not judged against the targets): FedAvg with 1 local epoch per round; gossip with 2 push-sum steps per round (twice the messages)"
  )
  table(
    ["round", "FedAvg 1 epoch", "gossip 2 steps"],
    Array.from({ length: gossipRounds }, (_, round) => [
      `${round + 1}`,
      round < rounds ? percent(fedAvgOneEpoch.accuracies[round]!) : "",
      percent(gossipTwoSteps.accuracies[round]!)
    ])
  )
  report("local-only final accuracy vs FedAvg", "%", 100 * local.at(-1)!, 100 * fedAvgFinal, "FedAvg")

  console.log("\n### bytes a peer sends per round (float32 on the wire)")
  const factored = Object.values(task.initial.weights.modules).reduce(
    (total, module) => total + 4 * (module.A.length + module.B.length),
    0
  ) + 4 * (task.initial.head!.weight.length + task.initial.head!.bias.length)
  table(["what travels", "bytes per update", "FedAvg: up per round", "gossip: sent per round"], [
    [
      "FFA-LoRA: B + head (used above)",
      `${fedAvg.updateBytes}`,
      `${fedAvg.updateBytes}`,
      `${gossip.messagesPerPeerPerRound * (gossip.vectorBytes + 8)}`
    ],
    ["factored: A + B + head", `${factored}`, `${factored}`, `${gossip.messagesPerPeerPerRound * (factored + 8)}`],
    [
      "dense ΔW + head",
      `${dense.updateBytes}`,
      `${dense.updateBytes}`,
      `${gossip.messagesPerPeerPerRound * (dense.updateBytes + 8)}`
    ]
  ])
  console.log(
    `  FedAvg also receives the global model once per round (same size); gossip sends k=${SETUP.gossipFanout} messages of a model and its push-sum weight (8 bytes)`
  )
  report("dense vs FFA-LoRA bytes per update", "B", dense.updateBytes, fedAvg.updateBytes, "FFA-LoRA")
}

const attacks = async (task: Task, peers: ReadonlyArray<Peer>) => {
  const random = new SeededRandom(SETUP.attackerSeed)
  const attackers = new Set(shuffled(peers.map((_, index) => index), random).slice(0, 2))
  const rules: ReadonlyArray<AggregationRule> = [
    { kind: "fedavg" },
    { kind: "median" },
    { kind: "trimmed-mean", trim: SETUP.trimmedBeta },
    { kind: "krum", attackers: 2 },
    { kind: "multi-krum", attackers: 2, selected: peers.length - 2 }
  ]
  const scenarios: ReadonlyArray<Attack> = ["none", "scaled ×10", "sign-flipped", "random, same norm", "flipped labels"]
  console.log(
    `\n### 2 of ${peers.length} peers attacking (peers ${
      [...attackers].sort().join(", ")
    }, seed ${SETUP.attackerSeed}), ${SETUP.attackRounds} rounds of ${SETUP.attackLocalEpochs} local epoch, final accuracy %`
  )
  const cache: UpdateCache = new Map()
  const results = new Map<string, { accuracy: number; attackersOut: number; honestOut: number; reason: string }>()
  for (const attack of scenarios) {
    for (const rule of rules) {
      const outcome = await runFederated(task, peers, {
        rounds: SETUP.attackRounds,
        rule,
        attackers,
        attack,
        seed: SETUP.runSeed,
        localEpochs: SETUP.attackLocalEpochs
      }, cache)
      let attackersOut = 0
      let honestOut = 0
      for (const verdicts of outcome.verdicts) {
        verdicts.forEach((verdict, index) => {
          if (verdict.kept) return
          if (attackers.has(index)) attackersOut++
          else honestOut++
        })
      }
      const last = outcome.verdicts.at(-1)!
      const shown = last[[...attackers][0]!]!
      results.set(`${attack}|${describeRule(rule)}`, {
        accuracy: outcome.accuracies.at(-1)!,
        attackersOut,
        honestOut,
        reason: `${shown.peer}: ${shown.kept ? "kept" : "excluded"}, ${shown.reason}`
      })
    }
    console.log(`  ${attack} done (${elapsed()})`)
  }
  const clean = results.get(`none|${describeRule({ kind: "fedavg" })}`)!.accuracy
  table(
    ["attack", ...rules.map(describeRule), "best robust", "target"],
    scenarios.map((attack) => {
      const figures = rules.map((rule) => results.get(`${attack}|${describeRule(rule)}`)!.accuracy)
      const robust = Math.max(...figures.slice(1))
      const meanFell = figures[0]! < clean - 0.02
      const within = robust >= clean - 0.02
      return [
        attack,
        ...figures.map(percent),
        percent(robust),
        attack === "none"
          ? "(clean run)"
          : `${within ? "robust within 2 pts" : "robust NOT within 2 pts"}; mean ${
            meanFell ? "falls" : "does not fall"
          }: ${met(within && meanFell)}`
      ]
    })
  )
  console.log(`  clean run = FedAvg with no attacker: ${percent(clean)}%`)
  console.log(
    "  exclusions over all rounds (attacker updates out / honest updates out), and the last round's verdict on one attacker:"
  )
  for (const attack of scenarios.slice(1)) {
    for (const rule of rules.slice(1)) {
      const entry = results.get(`${attack}|${describeRule(rule)}`)!
      const total = SETUP.attackRounds * 2
      console.log(
        `    ${attack.padEnd(18)} ${
          describeRule(rule).padEnd(22)
        } ${entry.attackersOut}/${total} attacker, ${entry.honestOut}/${
          SETUP.attackRounds * (peers.length - 2)
        } honest   ${entry.reason}`
      )
    }
  }
}

const forgetting = async (
  model: Parameters<typeof makeTask>[0],
  aTrain: ReadonlyArray<ClassificationSample>,
  aTest: ReadonlyArray<ClassificationSample>,
  bTrain: ReadonlyArray<ClassificationSample>,
  bTest: ReadonlyArray<ClassificationSample>
) => {
  console.log(
    `\n### EWC: task A (easy-ham-1 vs spam-1) then task B (hard-ham-1 vs spam-2); A and B factors and the head trained, ${SETUP.ewcEpochs} epochs each; train ${aTrain.length}/${bTrain.length}, test ${aTest.length}/${bTest.length}`
  )
  const config = { ...CONFIG, epochs: SETUP.ewcEpochs }
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
  const seeds = [1, 2, 3].map((offset) => CONFIG.seed! + offset)
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
  /** Task A and B accuracy after training on B, one run per seed (the order of B's samples). */
  const onBSeeds = async (lambda: number | undefined) => {
    const a: Array<number> = []
    const b: Array<number> = []
    for (const seed of seeds) {
      const trained = onB(lambda, seed)
      a.push(await task.evaluate(trained, aTest))
      b.push(await task.evaluate(trained, bTest))
    }
    const mean = (values: ReadonlyArray<number>) => values.reduce((x, y) => x + y, 0) / values.length
    return { a: mean(a), b: mean(b), spread: a.map(percent).join(" / ") }
  }
  const aBefore = await task.evaluate(afterA, aTest)
  const bBefore = await task.evaluate(afterA, bTest)
  const plain = await onBSeeds(undefined)
  const rows: Array<Array<string>> = [["after A", percent(aBefore), "", percent(bBefore), ""]]
  rows.push(["then B, plain fine-tuning", percent(plain.a), plain.spread, percent(plain.b), ""])
  const lost = aBefore - plain.a
  let judged = 0
  for (const factor of [0.1, 1, 10]) {
    const lambda = lambda0 * factor
    const ewc = await onBSeeds(lambda)
    const kept = lost > 0 ? (ewc.a - plain.a) / lost : Number.NaN
    if (factor === 1) judged = kept
    rows.push([
      `then B with EWC λ=${lambda.toExponential(2)}${factor === 1 ? " (1/mean F)" : ""}`,
      percent(ewc.a),
      ewc.spread,
      percent(ewc.b),
      Number.isNaN(kept) ? "-" : `${(100 * kept).toFixed(0)}%`
    ])
  }
  await task.release()
  console.log(
    `Fisher diagonal from ${aTrain.length} per-sample gradients; mean F = ${
      (sum / count).toExponential(2)
    }; λ chosen a priori as 1/mean F; training on B repeated with seeds ${
      seeds.join(", ")
    } (B's sample order), means shown`
  )
  table(["", "task A acc % (mean)", "task A per seed", "task B acc % (mean)", "share of A's loss kept"], rows)
  console.log(
    lost > 0
      ? `  target: EWC (λ = 1/mean F) keeps ≥ 50% of what plain fine-tuning loses on A (${percent(lost)} points): ${
        (100 * judged).toFixed(0)
      }%: ${met(judged >= 0.5)}`
      : `  target: not applicable: plain fine-tuning on B lost nothing on A (${
        percent(-lost)
      } points gained), so there is no forgetting to prevent: MISSED (no measurement)`
  )
}
