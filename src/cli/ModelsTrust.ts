/**
 * The `edge-net-models` commands that check signatures run in the trust store of `trust.keysDir`, and
 * those that pull, verify or publish in the Models service too. Apart from ModelsContext.ts so that
 * the commands that need neither (`list`, `cache`, `config`) do not load them.
 */
import { Effect, type Option } from "effect"
import { Models } from "../content/Models.js"
import { keysDirectory } from "../content/ModelsConfig.js"
import { TrustStore } from "../content/TrustStore.js"
import { ModelsSettings, withModels } from "./ModelsContext.js"

/** `withModels` plus the trust store of `trust.keysDir` (publisher keys, trusted versions). */
export const withTrust = <A, E, R>(config: Option.Option<string>, use: Effect.Effect<A, E, R>) =>
  withModels(
    config,
    Effect.flatMap(ModelsSettings, ({ config }) => Effect.provide(use, TrustStore.Default(keysDirectory(config))))
  )

/** `withTrust` plus the Models service on that cache and trust store: what `pull`, `verify` and `publish` run. */
export const withModelsService = <A, E, R>(config: Option.Option<string>, use: Effect.Effect<A, E, R>) =>
  withTrust(config, Effect.flatMap(ModelsSettings, ({ config }) => Effect.provide(use, Models.Default(config))))
