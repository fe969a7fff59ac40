/**
 * The optimizer's RPC contract: another program asks a node to optimize a model the node holds and
 * watches it (pipeline steps, each job step as the journal records it, the outcome); the optimized
 * model lands in the node's content store under the digest the outcome names. Optimizing spends the
 * node's compute and writes to its store, so it takes the network's operator key(s).
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { ModelSource, ModelSourceError } from "../../content/ModelSource.js"
import { Authority, operator, SignedCommands, signedFields } from "../../domain/CommandAuthority.js"
import { OptimizeProgress, OptimizeRunFailed, OptimizeSettings } from "./OptimizeRun.js"

export class OptimizerRpcs extends RpcGroup.make(
  Rpc.make("OptimizerRun", {
    payload: {
      model: ModelSource,
      settings: OptimizeSettings,
      /** Texts that calibrate (four fifths) and validate (the rest) a text model; default: seeded random inputs. */
      calibrationTexts: Schema.optional(Schema.Array(Schema.String).pipe(Schema.maxItems(1024))),
      ...signedFields
    },
    success: OptimizeProgress,
    error: Schema.Union(OptimizeRunFailed, ModelSourceError),
    stream: true
  }).middleware(SignedCommands).annotate(Authority, operator)
) {}
