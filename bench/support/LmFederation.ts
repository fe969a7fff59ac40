/**
 * LM adaptation between peers that each hold a different corpus (issue 17): tiny-lm, three peers with
 * State of the Union addresses, Moby-Dick and the Brown corpus. Each peer trains a rank-4 adapter on
 * its own corpus alone (local), the three train one shared adapter by FedAvg over FFA-LoRA updates
 * (A frozen and shared, so averaging B is averaging the updates), and, for reference, one trainer sees
 * all three corpora (centralized). Every adapter is judged by its held-out perplexity on every corpus,
 * on documents tiny-lm never saw (its model card's held-out split), merged into the model and run by
 * ONNX Runtime.
 *
 * Every run makes the same passes over the data: `rounds` × `localEpochs` epochs of each peer's windows.
 */
import { aggregate } from "../../src/compute/learning/Aggregators.js"
import type { AdaptedModel } from "../../src/compute/learning/Updates.js"
import { applySharedAUpdate, sharedAUpdate } from "../../src/compute/learning/Updates.js"
import { SeededRandom } from "../../src/compute/lora/Adapter.js"
import { adaptedSession, heldOutLoss } from "../../src/compute/lora/train/Evaluate.js"
import { LoraTrainer } from "../../src/compute/lora/train/LoraTrainer.js"
import type { CausalLmSample } from "../../src/compute/lora/train/Objectives.js"
import { languageModelWindows } from "../../src/compute/lora/train/TextData.js"
import type { MicroLoRAConfig } from "../../src/compute/lora/train/TrainingConfig.js"
import { trainAdapter } from "../../src/compute/lora/train/TrainingLoop.js"
import { createSession } from "../../src/compute/optimize/Runner.js"
import { lmCorpora } from "../../test/support/Corpora.js"
import { referenceModel } from "../../test/support/LoraTasks.js"
import { table } from "./Printing.js"
import { shuffled } from "./Splits.js"

export interface LmSetup {
  readonly trainWindows: number
  readonly heldOutWindows: number
  readonly windowLength: number
  readonly rounds: number
  readonly localEpochs: number
  readonly seed: number
}

const LM = { kind: "causal-lm" } as const
/** tiny-lm's end-of-text token, between documents in a window stream. */
const SEPARATOR = 3071

/** `count` of `documents` spread evenly over the list, so every part of a corpus is represented. */
const spreadDocuments = (documents: ReadonlyArray<string>, count: number) =>
  documents.length <= count
    ? [...documents]
    : Array.from({ length: count }, (_, k) => documents[Math.floor((k * documents.length) / count)]!)

const perplexity = (loss: number) => Math.exp(loss)

export const measureLmFederation = async (setup: LmSetup, config: MicroLoRAConfig, elapsed: () => string) => {
  const { model, tokenizer } = referenceModel("tiny-lm")
  const corpora = lmCorpora()
  const windowsOf = (documents: ReadonlyArray<string>, count: number) =>
    languageModelWindows(tokenizer, documents, setup.windowLength, { separator: SEPARATOR, maxWindows: count })
  // Windows from documents spread over each corpus: a few windows from each of many documents.
  const peers = corpora.map((corpus) => ({
    name: corpus.name,
    train: windowsOf(spreadDocuments(corpus.train, setup.trainWindows), setup.trainWindows),
    heldOut: windowsOf(spreadDocuments(corpus.heldOut, setup.heldOutWindows), setup.heldOutWindows)
  }))
  console.log(
    `\n### LM adaptation, one corpus per peer: tiny-lm, ${peers.length} peers, ${setup.rounds} rounds of ${setup.localEpochs} local epoch(s)`
  )
  console.log(
    `  windows of ${setup.windowLength} tokens; train / held-out per peer: ${
      peers.map((peer) => `${peer.name} ${peer.train.length}/${peer.heldOut.length}`).join(", ")
    }; held-out documents are tiny-lm's own held-out split; FFA-LoRA (A frozen at seed ${config.seed})`
  )
  const epochs = setup.rounds * setup.localEpochs
  const starter = new LoraTrainer(model, config, LM)
  const initial: AdaptedModel = { weights: starter.weights() }
  const frozen = new Set(Object.keys(initial.weights.modules).map((module) => `${module}.A`))
  const train = (start: AdaptedModel, windows: ReadonlyArray<CausalLmSample>, seed: number, trainEpochs: number) => {
    const trainer = new LoraTrainer(model, { ...config, seed, epochs: trainEpochs }, LM, { weights: start.weights })
    return { weights: trainAdapter(trainer, windows, { frozen }).weights } satisfies AdaptedModel
  }

  const locals = peers.map((peer, index) => train(initial, peer.train, setup.seed + index, epochs))
  console.log(`  local adapters done (${elapsed()})`)
  const everything = shuffled(peers.flatMap((peer) => peer.train), new SeededRandom(setup.seed))
  const centralized = train(initial, everything, setup.seed, epochs)
  console.log(`  centralized done (${elapsed()})`)
  let shared = initial
  for (let round = 0; round < setup.rounds; round++) {
    const updates = peers.map((peer, index) => {
      const trained = train(shared, peer.train, setup.seed + 1000 * (round + 1) + index, setup.localEpochs)
      return sharedAUpdate(peer.name, peer.train.length, trained, shared)
    })
    shared = applySharedAUpdate(shared, aggregate(updates, { kind: "fedavg" }))
  }
  console.log(`  FedAvg done (${elapsed()})`)

  const base = await createSession(referenceModel("tiny-lm").bytes)
  const perplexities = async (target: Parameters<typeof heldOutLoss>[0]) => {
    const values: Array<number> = []
    for (const peer of peers) values.push(perplexity(await heldOutLoss(target, model, peer.heldOut)))
    return values
  }
  const rows: Array<{ readonly name: string; readonly values: ReadonlyArray<number> }> = [
    { name: "base tiny-lm (no adapter)", values: await perplexities(base) }
  ]
  await base.release()
  const adapters = [
    ...peers.map((peer, index) => ({ name: `local: ${peer.name} only`, adapted: locals[index]! })),
    { name: "FedAvg shared adapter", adapted: shared },
    { name: "centralized (all three)", adapted: centralized }
  ]
  for (const { adapted, name } of adapters) {
    const session = await adaptedSession(model, adapted.weights)
    rows.push({ name, values: await perplexities(session) })
    await session.session.release()
  }
  const mean = (values: ReadonlyArray<number>) => values.reduce((sum, value) => sum + value, 0) / values.length
  console.log("held-out perplexity (lower is better)")
  table(
    ["adapter", ...peers.map((peer) => peer.name), "mean"],
    rows.map((row) => [row.name, ...row.values.map((value) => value.toFixed(2)), mean(row.values).toFixed(2)])
  )
  // The shared adapter against each local one: on the local one's own corpus, and on the others.
  const sharedRow = rows.find((row) => row.name === "FedAvg shared adapter")!
  const localRows = rows.filter((row) => row.name.startsWith("local:"))
  const comparison = peers.map((peer, index) => {
    const local = localRows[index]!.values
    const others = local.filter((_, corpus) => corpus !== index)
    const sharedOthers = sharedRow.values.filter((_, corpus) => corpus !== index)
    return [
      peer.name,
      `${sharedRow.values[index]!.toFixed(2)} vs ${local[index]!.toFixed(2)}`,
      `${mean(sharedOthers).toFixed(2)} vs ${mean(others).toFixed(2)}`
    ]
  })
  console.log("the shared adapter against each peer's local one (shared vs local)")
  table(["peer", "on its own corpus", "on the other corpora (mean)"], comparison)
  console.log(`  LM adaptation done (${elapsed()})`)
}
