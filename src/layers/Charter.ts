/**
 * Founds the network's charter at a node's first start, from its settings: network id, operator keys
 * (the node's own key unless others are named), threshold and the economy's sequencer (none unless
 * named; `self` names this node). Later starts keep what was recorded; settings that name other terms
 * stop the node with one line.
 */
import { Effect, Layer, Option } from "effect"
import { NetworkCharter } from "../actors/network/CharterService.js"
import { NodeKey } from "../content/NodeKey.js"
import type { CharterSettings } from "./CharterSettings.js"
import { DEFAULT_NETWORK } from "./NodeConfig.js"

export const foundCharter = (settings: CharterSettings) =>
  Effect.gen(function*() {
    const charter = yield* NetworkCharter
    const key = yield* NodeKey
    const recorded = yield* charter.terms()
    const named = settings.network !== undefined || settings.operators !== undefined ||
      settings.operatorThreshold !== undefined || settings.sequencer !== undefined
    if (Option.isSome(recorded) && !named) return recorded.value
    const previous = Option.getOrUndefined(recorded)
    const sequencer = settings.sequencer === "self" ? key.publicKey : settings.sequencer ?? previous?.sequencer
    return yield* charter.found({
      network: settings.network ?? previous?.network ?? DEFAULT_NETWORK,
      operators: settings.operators ?? previous?.operators ?? [key.publicKey],
      threshold: settings.operatorThreshold ?? previous?.threshold ?? 1,
      ...(sequencer === undefined ? {} : { sequencer })
    })
  }).pipe(Effect.withSpan("Charter.foundCharter"))

export const charterLayer = (settings: CharterSettings) => Layer.effectDiscard(foundCharter(settings))
