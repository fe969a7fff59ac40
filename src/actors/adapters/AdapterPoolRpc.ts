/**
 * The adapter pool's RPC contract: an inference service asks the node which resident adapter suits a
 * task (by embedding), loads, pins and unloads adapters, and reads the pool. Every change it causes is
 * in the node's log, with the eviction reasons.
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { Authority, operator, SignedCommands, signedFields } from "../../domain/CommandAuthority.js"
import { VersionConflict } from "../../events/Journal.js"
import { AdapterPoolError } from "./AdapterPool.js"
import { PoolReceipt, PoolView, Selection } from "./AdapterPoolService.js"

export const AdapterPoolFailure = Schema.Union(AdapterPoolError, VersionConflict)

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
    success: PoolReceipt,
    error: AdapterPoolFailure
  }).middleware(SignedCommands).annotate(Authority, operator),
  Rpc.make("PoolUse", { payload: Key, success: PoolReceipt, error: AdapterPoolFailure }).middleware(SignedCommands)
    .annotate(Authority, operator),
  Rpc.make("PoolPin", { payload: Key, success: PoolReceipt, error: AdapterPoolFailure }).middleware(SignedCommands)
    .annotate(Authority, operator),
  Rpc.make("PoolUnpin", { payload: Key, success: PoolReceipt, error: AdapterPoolFailure }).middleware(SignedCommands)
    .annotate(Authority, operator),
  Rpc.make("PoolUnload", { payload: Key, success: PoolReceipt, error: AdapterPoolFailure }).middleware(SignedCommands)
    .annotate(Authority, operator),
  Rpc.make("PoolConfigure", {
    payload: {
      maxSlots: Schema.optional(Schema.Number),
      memoryBudgetBytes: Schema.optional(Schema.Number),
      ...signedFields
    },
    success: PoolReceipt,
    error: AdapterPoolFailure
  }).middleware(SignedCommands).annotate(Authority, operator),
  Rpc.make("PoolSelect", {
    payload: { embedding: Schema.Array(Schema.Number), ...signedFields },
    success: Selection,
    error: AdapterPoolFailure
  }).middleware(SignedCommands).annotate(Authority, operator)
) {}
