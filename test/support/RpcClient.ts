import { FetchHttpClient } from "@effect/platform"
import { RpcClient, RpcSerialization } from "@effect/rpc"
import { Layer } from "effect"
import { NodeApiRpcs } from "../../src/rpc/NodeApiRpcs.js"

/** An RPC client for a node's /rpc, as any user service would build one. */
export const nodeRpcClient = RpcClient.make(NodeApiRpcs)

export const rpcProtocol = (url: string) =>
  RpcClient.layerProtocolHttp({ url: `${url}/rpc` }).pipe(
    Layer.provide([FetchHttpClient.layer, RpcSerialization.layerNdjson])
  )
