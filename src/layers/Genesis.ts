/**
 * Genesis settings: parameter values a node's operator gives at start (for a test network, short
 * voting periods). Each applies only while its parameter was never changed, so a value set later by
 * governance is never overwritten by a restart with the same settings.
 */
import { Effect, Layer } from "effect"
import { NetworkParameters } from "../actors/economy/NetworkParameters.js"
import type { ParameterName } from "../actors/economy/ParameterCatalogue.js"
import type { GenesisParameters } from "./GenesisSettings.js"

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
