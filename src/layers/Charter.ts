/**
 * Founds the network's charter at a node's first start, from its settings: network id, operator keys
 * (the node's own key unless others are named) and threshold. Later starts keep what was recorded;
 * settings that name other terms stop the node with one line.
 */
import { Effect, Layer, Option } from "effect"
import { NetworkCharter } from "../actors/network/CharterService.js"
import { NodeKey } from "../content/NodeKey.js"
import type { NodeSettings } from "./NodeConfig.js"
import { DEFAULT_NETWORK } from "./NodeConfig.js"

export const foundCharter = (settings: Pick<NodeSettings, "network" | "operators" | "operatorThreshold">) =>
  Effect.gen(function*() {
    const charter = yield* NetworkCharter
    const key = yield* NodeKey
    const recorded = yield* charter.terms()
    const named = settings.network !== undefined || settings.operators !== undefined ||
      settings.operatorThreshold !== undefined
    if (Option.isSome(recorded) && !named) return recorded.value
    const previous = Option.getOrUndefined(recorded)
    return yield* charter.found({
      network: settings.network ?? previous?.network ?? DEFAULT_NETWORK,
      operators: settings.operators ?? previous?.operators ?? [key.publicKey],
      threshold: settings.operatorThreshold ?? previous?.threshold ?? 1
    })
  }).pipe(Effect.withSpan("Charter.foundCharter"))

export const charterLayer = (settings: Pick<NodeSettings, "network" | "operators" | "operatorThreshold">) =>
  Layer.effectDiscard(foundCharter(settings))

/**
 * Reads `EDGE_NET_NETWORK`, `EDGE_NET_OPERATORS` (comma-separated public keys) and
 * `EDGE_NET_OPERATOR_THRESHOLD`; a malformed value is an error that names the variable.
 */
export const parseCharterSettings = (environment: Readonly<Record<string, string | undefined>>) => {
  const network = environment["EDGE_NET_NETWORK"]?.trim()
  const operators = environment["EDGE_NET_OPERATORS"]?.split(",").map((key) => key.trim()).filter((key) => key !== "")
  const threshold = environment["EDGE_NET_OPERATOR_THRESHOLD"]?.trim()
  if (network !== undefined && !/^[a-z0-9][a-z0-9._-]{0,63}$/.test(network)) {
    throw new Error(`EDGE_NET_NETWORK: "${network}" is not a network id (1-64 lowercase letters, digits or . _ -)`)
  }
  for (const key of operators ?? []) {
    if (!/^[0-9a-f]{64}$/.test(key)) {
      throw new Error(`EDGE_NET_OPERATORS: "${key}" is not an Ed25519 public key (64 lowercase hex digits)`)
    }
  }
  if (threshold !== undefined && !/^[1-9][0-9]{0,1}$/.test(threshold)) {
    throw new Error(`EDGE_NET_OPERATOR_THRESHOLD: "${threshold}" is not a whole number from 1 to 99`)
  }
  return {
    ...(network === undefined || network === "" ? {} : { network }),
    ...(operators === undefined || operators.length === 0 ? {} : { operators }),
    ...(threshold === undefined || threshold === "" ? {} : { operatorThreshold: Number(threshold) })
  } satisfies Pick<NodeSettings, "network" | "operators" | "operatorThreshold">
}
