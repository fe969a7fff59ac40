/** Every RPC group a node serves at /rpc, merged: the contract clients build against. */
import { LedgerRpcs } from "../actors/economy/LedgerRpc.js"
import { RegistryRpcs } from "../actors/registry/RegistryRpc.js"
import { NodeRpcs } from "./NodeRpc.js"

export const NodeApiRpcs = NodeRpcs.merge(LedgerRpcs).merge(RegistryRpcs)
