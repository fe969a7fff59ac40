/**
 * Founds the network's charter at a node's first start, from its settings: network id, operator keys
 * (the node's own key unless others are named) and threshold. Later starts keep what was recorded;
 * settings that name other terms stop the node with one line.
 */
import { Effect, Layer, Option } from "effect"
import { NetworkCharter } from "../actors/network/CharterService.js"
import { NodeKey } from "../content/NodeKey.js"
import type { NodeSettings } from "../node/NodeConfig.js"
import { DEFAULT_NETWORK } from "../node/NodeConfig.js"

export const foundCharter = (settings: Pick<NodeSettings, "network" | "operators" | "operatorThreshold">) =>
  Effect.gen(function* () {
    const charter = yield* NetworkCharter
    const key = yield* NodeKey
    const recorded = yield* charter.terms()
    const named = settings.network !== undefined || settings.operators !== undefined || settings.operatorThreshold !== undefined
    if (Option.isSome(recorded) && !named) return recorded.value
    const previous = Option.getOrUndefined(recorded)
    return yield* charter.found({
      network: settings.network ?? previous?.network ?? DEFAULT_NETWORK,
      operators: settings.operators ?? previous?.operators ?? [key.publicKey],
      threshold: settings.operatorThreshold ?? previous?.threshold ?? 1
    })
  }).pipe(Effect.withSpan("Charter.foundCharter"))

export const charterLayer = (settings: Pick<NodeSettings, "network" | "operators" | "operatorThreshold">) => Layer.effectDiscard(foundCharter(settings))
