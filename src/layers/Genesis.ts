/**
 * Genesis settings: parameter values a node's operator gives at start (for a test network, short
 * voting periods). Each applies only while its parameter was never changed, so a value set later by
 * governance is never overwritten by a restart with the same settings.
 */
import { Effect, Layer } from "effect"
import { NetworkParameters } from "../actors/economy/NetworkParameters.js"
import type { ParameterName } from "../actors/economy/ParameterCatalogue.js"
import { PARAMETERS } from "../actors/economy/ParameterCatalogue.js"

/** Parameter name to value; the names are checked when parsed. */
export type GenesisParameters = Readonly<Record<string, bigint>>

/** Parses `name=value,name=value` (the `EDGE_NET_GENESIS` variable); an unknown name or bad value is an error. */
export const parseGenesisParameters = (text: string | undefined): GenesisParameters => {
  const settings: Record<string, bigint> = {}
  for (const item of (text ?? "").split(",").map((part) => part.trim()).filter((part) => part !== "")) {
    const [name = "", value = ""] = item.split("=").map((part) => part.trim())
    if (!Object.hasOwn(PARAMETERS, name)) throw new Error(`EDGE_NET_GENESIS: unknown parameter "${name}"`)
    if (!/^[0-9]+$/.test(value)) throw new Error(`EDGE_NET_GENESIS: ${name} needs a whole number, got "${value}"`)
    settings[name] = BigInt(value)
  }
  return settings
}

export const applyGenesisParameters = (settings: GenesisParameters) =>
  Effect.gen(function*() {
    const parameters = yield* NetworkParameters
    for (const [name, value] of Object.entries(settings) as Array<[ParameterName, bigint]>) {
      if (yield* parameters.wasChanged(name)) continue
      yield* parameters.set(name, value, { commandId: `genesis/${name}` })
      yield* Effect.logInfo(`genesis: ${name} = ${value}`)
    }
  }).pipe(Effect.withSpan("Genesis.applyGenesisParameters"))

/** Applies the settings once, before the server and policies start. */
export const genesisParametersLayer = (settings: GenesisParameters) =>
  Layer.effectDiscard(Effect.orDie(applyGenesisParameters(settings)))
