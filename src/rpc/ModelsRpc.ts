/**
 * The models a node holds, over RPC (the Models service on the node's store and trust keys): pull a
 * model from another registry into the node, verified piece by piece against a manifest signed by a
 * key the node trusts, and list it in the node's own registry so its peers and its jobs find it;
 * verify what the node holds; publish blobs the node holds (an optimizer's output, say) under a
 * manifest the node signs with its key; and manage the keys it trusts. A pull makes the node fetch
 * from a URL its caller names and spends its disk, a publication speaks for the node, and trusting a
 * key decides what it will pull, so these take the operator key(s); verifying and listing are reads.
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { PublishReceipt } from "../actors/registry/Registry.js"
import { PublishFailure } from "../actors/registry/RegistryRpc.js"
import { BaseModelRef, Sha256Hex } from "../content/Manifest.js"
import { ModelPullEvent, ModelsFailure, VerifyReport } from "../content/Models.js"
import { SourceKind } from "../content/ModelsConfig.js"
import { Authority, operator, SignedCommands, signedFields } from "../domain/CommandAuthority.js"

/** A watched pull on a node: the pull's own events, then its listing in the node's registry. */
export const NodePullEvent = Schema.Union(
  ...ModelPullEvent.members,
  Schema.TaggedStruct("Listed", { receipt: PublishReceipt })
)
export type NodePullEvent = typeof NodePullEvent.Type

export const TrustedKeyView = Schema.Struct({
  keyId: Schema.String,
  publicKey: Schema.String,
  canSign: Schema.Boolean
})

export class ModelsRpcs extends RpcGroup.make(
  Rpc.make("ModelsPull", {
    payload: {
      id: Schema.String,
      /** Default: the registry's latest version. */
      version: Schema.optional(Schema.String),
      /** The registry node to pull from (its peers and the blobs' announced holders serve pieces too). */
      registry: Schema.String.pipe(Schema.pattern(/^https?:\/\/[^\s]+$/)),
      /** Only these kinds of source; all when absent. */
      sources: Schema.optional(Schema.Array(SourceKind)),
      allowRollback: Schema.optional(Schema.Boolean),
      /** List the pulled manifest in the node's own registry (default true). */
      list: Schema.optional(Schema.Boolean),
      ...signedFields
    },
    success: NodePullEvent,
    error: Schema.Union(ModelsFailure, PublishFailure),
    stream: true
  }).middleware(SignedCommands).annotate(Authority, operator),
  Rpc.make("ModelsVerify", {
    payload: {
      id: Schema.String,
      version: Schema.optional(Schema.String),
      /** Also check the manifest's signatures against the node's trusted keys. */
      checkSignature: Schema.optional(Schema.Boolean)
    },
    success: VerifyReport,
    error: ModelsFailure
  }),
  Rpc.make("ModelsPublish", {
    payload: {
      /** Blobs in the node's store, each under the file name the manifest gives it. */
      artifacts: Schema.NonEmptyArray(Schema.Struct({ sha256: Sha256Hex, filename: Schema.String })),
      name: Schema.String,
      version: Schema.String,
      type: Schema.String,
      id: Schema.optional(Schema.String),
      family: Schema.optional(Schema.String),
      quantization: Schema.optional(Schema.Literal("FP32", "FP16", "INT8", "INT4")),
      license: Schema.optional(Schema.String),
      /** The model these blobs were optimized from (with `quantization`): adapters made for it run on them. */
      baseModel: Schema.optional(BaseModelRef),
      expiresInDays: Schema.optional(Schema.Number.pipe(Schema.int(), Schema.between(1, 3650))),
      ...signedFields
    },
    success: Schema.Struct({ receipt: PublishReceipt, manifest: Schema.Unknown }),
    error: Schema.Union(ModelsFailure, PublishFailure)
  }).middleware(SignedCommands).annotate(Authority, operator),
  Rpc.make("ModelsTrust", {
    payload: { keyId: Schema.String, publicKey: Schema.String, ...signedFields },
    success: TrustedKeyView,
    error: ModelsFailure
  }).middleware(SignedCommands).annotate(Authority, operator),
  Rpc.make("ModelsUntrust", {
    payload: { keyId: Schema.String, ...signedFields },
    success: Schema.Struct({ removed: Schema.Boolean }),
    error: ModelsFailure
  }).middleware(SignedCommands).annotate(Authority, operator),
  Rpc.make("ModelsTrusted", {
    payload: {},
    success: Schema.Array(TrustedKeyView),
    error: ModelsFailure
  })
) {}
