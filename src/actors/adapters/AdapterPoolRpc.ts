/**
 * The adapter pool's RPC contract: an inference service asks the node which resident adapter suits a
 * task (by embedding), loads, pins and unloads adapters, and reads the pool. Every change it causes is
 * in the node's log, with the eviction reasons.
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { VersionConflict } from "../../events/Journal.js"
import { AdapterPoolError, AdapterPoolEvent } from "./AdapterPool.js"
import { Authority, operator, SignedCommands, signedFields } from "../../domain/CommandAuthority.js"

export const AdapterPoolFailure = Schema.Union(AdapterPoolError, VersionConflict)

export const ResidentView = Schema.Struct({
  key: Schema.String,
  adapterId: Schema.String,
  version: Schema.String,
  bytes: Schema.Number,
  pinned: Schema.Boolean,
  lastUsed: Schema.Number,
  dimensions: Schema.NullOr(Schema.Number)
})

const poolFields = {
  maxSlots: Schema.Number,
  memoryBudgetBytes: Schema.Number,
  usedBytes: Schema.Number,
  residents: Schema.Array(ResidentView),
  version: Schema.Number
}

export const PoolView = Schema.Struct(poolFields)
export const PoolReceiptView = Schema.Struct({ ...poolFields, events: Schema.Array(AdapterPoolEvent), position: Schema.Number })
export const SelectionView = Schema.Struct({ ...PoolReceiptView.fields, key: Schema.String, similarity: Schema.Number })

const Key = { key: Schema.String, ...signedFields }

export class AdapterPoolRpcs extends RpcGroup.make(
  Rpc.make("PoolState", { success: PoolView }),
  Rpc.make("PoolLoad", {
    payload: {
      adapterId: Schema.String,
      version: Schema.String,
      bytes: Schema.Number,
      embedding: Schema.optional(Schema.Array(Schema.Number)),
      pin: Schema.optional(Schema.Boolean),
      ...signedFields
    },
    success: PoolReceiptView,
    error: AdapterPoolFailure
  }).middleware(SignedCommands).annotate(Authority, operator),
  Rpc.make("PoolUse", { payload: Key, success: PoolReceiptView, error: AdapterPoolFailure }).middleware(SignedCommands).annotate(Authority, operator),
  Rpc.make("PoolPin", { payload: Key, success: PoolReceiptView, error: AdapterPoolFailure }).middleware(SignedCommands).annotate(Authority, operator),
  Rpc.make("PoolUnpin", { payload: Key, success: PoolReceiptView, error: AdapterPoolFailure }).middleware(SignedCommands).annotate(Authority, operator),
  Rpc.make("PoolUnload", { payload: Key, success: PoolReceiptView, error: AdapterPoolFailure }).middleware(SignedCommands).annotate(Authority, operator),
  Rpc.make("PoolConfigure", {
    payload: { maxSlots: Schema.optional(Schema.Number), memoryBudgetBytes: Schema.optional(Schema.Number), ...signedFields },
    success: PoolReceiptView,
    error: AdapterPoolFailure
  }).middleware(SignedCommands).annotate(Authority, operator),
  Rpc.make("PoolSelect", { payload: { embedding: Schema.Array(Schema.Number), ...signedFields }, success: SelectionView, error: AdapterPoolFailure }).middleware(SignedCommands).annotate(Authority, operator)
) {}
