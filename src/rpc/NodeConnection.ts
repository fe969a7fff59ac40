/**
 * How another program reaches a node's RPC: over HTTP POST (NDJSON, a round trip per call) or over one
 * WebSocket (MessagePack, calls multiplexed on a connection that stays open). Both carry the same
 * contract (NodeApiRpcs) and the same signed commands.
 */
import { FetchHttpClient } from "@effect/platform"
import { NodeSocket } from "@effect/platform-node"
import { RpcClient, RpcSerialization } from "@effect/rpc"
import { Layer } from "effect"

const base = (url: string) => url.replace(/\/+$/, "")

/** `<url>/rpc` over HTTP POST. */
export const httpProtocol = (url: string) =>
  RpcClient.layerProtocolHttp({ url: `${base(url)}/rpc` }).pipe(
    Layer.provide([FetchHttpClient.layer, RpcSerialization.layerNdjson])
  )

/** `<url>/rpc/ws` over a WebSocket (`http` becomes `ws`, `https` becomes `wss`). */
export const socketProtocol = (url: string) =>
  RpcClient.layerProtocolSocket({ retryTransientErrors: true }).pipe(
    Layer.provide([
      NodeSocket.layerWebSocket(`${base(url).replace(/^http/, "ws")}/rpc/ws`),
      RpcSerialization.layerMsgPack
    ])
  )
