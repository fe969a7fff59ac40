/**
 * Bad peers, measured for `npm run bench -- learning`: 2 of the peers (chosen by a seed) send scaled,
 * sign-flipped or random updates, or train on flipped labels (Federation.ts's Attack says how strong), and every aggregation rule runs its own
 * federated rounds against each attack and against none; the final accuracy of each, with how many
 * attacker and honest updates each rule left out and why (its verdict on one attacker).
 */
import type { AggregationRule } from "../../src/compute/learning/Aggregators.js"
import { describeRule } from "../../src/compute/learning/Aggregators.js"
import { SeededRandom } from "../../src/compute/lora/Adapter.js"
import type { Schedule } from "../../src/compute/lora/train/AdamW.js"
import type { Attack, Peer, Task, UpdateCache } from "./Federation.js"
import { runFederated } from "./Federation.js"
import { met, percent, table } from "./Printing.js"
import { shuffled } from "./Splits.js"

export const measureAttacks = async (
  task: Task,
  peers: ReadonlyArray<Peer>,
  SETUP: {
    readonly attackerSeed: number
    readonly attackRounds: number
    readonly attackLocalEpochs: number
    readonly trimmedBeta: number
    readonly runSeed: number
    readonly schedule: Schedule
  },
  elapsed: () => string
) => {
  const random = new SeededRandom(SETUP.attackerSeed)
  const attackers = new Set(shuffled(peers.map((_, index) => index), random).slice(0, 2))
  const rules: ReadonlyArray<AggregationRule> = [
    { kind: "fedavg" },
    { kind: "median" },
    { kind: "trimmed-mean", trim: SETUP.trimmedBeta },
    { kind: "krum", attackers: 2 },
    { kind: "multi-krum", attackers: 2, selected: peers.length - 2 }
  ]
  const scenarios: ReadonlyArray<Attack> = [
    "none",
    "scaled ×30",
    "sign-flipped ×4",
    "random, 30× norm",
    "flipped labels, boosted ×4"
  ]
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
        schedule: SETUP.schedule,
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
        `    ${attack.padEnd(26)} ${
          describeRule(rule).padEnd(22)
        } ${entry.attackersOut}/${total} attacker, ${entry.honestOut}/${
          SETUP.attackRounds * (peers.length - 2)
        } honest   ${entry.reason}`
      )
    }
  }
}
