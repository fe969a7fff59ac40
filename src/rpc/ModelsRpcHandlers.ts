/** The node's side of ModelsRpc: the Models service on the node's store and trust keys, listing into its registry. */
import { Effect, Stream } from "effect"
import { Registry } from "../actors/registry/RegistryService.js"
import { Models, ModelsFailure, modelsFailure as failure } from "../content/Models.js"
import { NodeKey } from "../content/NodeKey.js"
import type { NodePullEvent } from "./ModelsRpc.js"
import { ModelsRpcs } from "./ModelsRpc.js"

type ListFailure = Effect.Effect.Error<ReturnType<Registry["publish"]>>

export const ModelsRpcHandlers = ModelsRpcs.toLayer(
  Effect.gen(function*() {
    const models = yield* Models
    const registry = yield* Registry
    const key = yield* NodeKey
    const signer = { keyId: key.nodeId, publicKey: key.publicKey, sign: (message: string) => key.sign(message) }
    return {
      ModelsPull: ({ allowRollback, id, list, registry: from, sources, version }) => {
        const pulled = models.pullStream({ id, version, registry: from, sources, allowRollback })
        if (list === false) return pulled
        // The manifest goes into the registry exactly as its publisher signed it: the node vouches for nothing.
        const listed = (receipt: { readonly id: string; readonly version: string }) =>
          Effect.flatMap(
            models.manifest(receipt.id, receipt.version),
            (manifest) => registry.publish(manifest, { allowOlder: allowRollback === true })
          ).pipe(
            Effect.map((published): NodePullEvent => ({ _tag: "Listed", receipt: published }))
          )
        return Stream.flatMap(
          pulled,
          (event): Stream.Stream<NodePullEvent, ModelsFailure | ListFailure> =>
            event._tag === "Pulled"
              ? Stream.concat(Stream.succeed(event), Stream.fromEffect(listed(event.receipt)))
              : Stream.succeed(event)
        )
      },
      ModelsVerify: ({ checkSignature, id, version }) => models.verify({ id, version }, checkSignature === true),
      ModelsPublish: (
        { artifacts, baseModel, expiresInDays, family, id, license, name, quantization, type, version }
      ) =>
        Effect.gen(function*() {
          if (baseModel !== undefined && quantization === undefined) {
            return yield* Effect.fail(
              new ModelsFailure({ reason: "a base model is named only for an optimized model: give its quantization" })
            )
          }
          const manifest = yield* models.publish({
            files: artifacts,
            name,
            version,
            type,
            id,
            family,
            quantization,
            ...(baseModel === undefined || quantization === undefined
              ? {}
              : { optimization: { quantization, baseModel } }),
            license: license ?? "unknown",
            expiresInDays: expiresInDays ?? 365,
            signer
          })
          return { receipt: yield* registry.publish(manifest), manifest }
        }),
      ModelsTrust: ({ keyId, publicKey }) => Effect.mapError(models.trust.trust(keyId, publicKey), failure),
      ModelsUntrust: ({ keyId }) =>
        Effect.map(Effect.mapError(models.trust.untrust(keyId), failure), (removed) => ({ removed })),
      ModelsTrusted: () => Effect.mapError(models.trust.list(), failure)
    }
  })
)
