import { FetchHttpClient } from "@effect/platform"
import { RpcClient, RpcSerialization } from "@effect/rpc"
import { Effect, Layer } from "effect"
import { signingClientLayer } from "../../src/rpc/CommandSigning.js"
import { NodeApiRpcs } from "../../src/rpc/NodeApiRpcs.js"

/** An RPC client for a node's /rpc, as any user service would build one. */
export const nodeRpcClient = RpcClient.make(NodeApiRpcs)

export const rpcProtocol = (url: string) =>
  RpcClient.layerProtocolHttp({ url: `${url}/rpc` }).pipe(
    Layer.provide([FetchHttpClient.layer, RpcSerialization.layerNdjson])
  )

/** Runs `use` on a client of the node at `url` that signs its commands (test/support/Signing's `as`). */
export const rpcAt = <A, E>(
  url: string,
  use: (client: Effect.Effect.Success<typeof nodeRpcClient>) => Effect.Effect<A, E>
): Promise<A> =>
  Effect.runPromise(
    Effect.flatMap(nodeRpcClient, use).pipe(
      Effect.scoped,
      Effect.provide(Layer.merge(rpcProtocol(url), signingClientLayer))
    ) as Effect.Effect<A, never>
  )
