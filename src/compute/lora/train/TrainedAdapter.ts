/**
 * What a training run leaves behind as an adapter: its description (the base it was made for, how it
 * was trained, its held-out figures before and after) and, for a classifier, its head and labels.
 * One definition for every trainer: the node's AdapterTraining service and the SDK's session trainer.
 */
import * as path from "node:path"
import type { AdapterDescription } from "../AdapterFile.js"
import type { ClassifierHead } from "./ClassifierHead.js"
import type { FileTrainingOutcome } from "./FileTraining.js"

export interface TrainedAdapterFields {
  readonly id: string
  readonly version: string
  readonly name?: string | undefined
  readonly domain?: string | undefined
  readonly license?: string | undefined
  /** The base model's id, as the adapter records it. */
  readonly baseModel: string
  /** What adapters for that base are keyed to (Manifest.adapterBaseDigestOf); default the trained file's digest. */
  readonly baseModelDigest?: string | undefined
  /** The training data's name, for the description. */
  readonly dataName: string
}

export const trainedAdapter = (
  outcome: FileTrainingOutcome,
  fields: TrainedAdapterFields
): {
  readonly description: AdapterDescription
  readonly classifier: { readonly head: ClassifierHead; readonly labels: ReadonlyArray<string> } | undefined
} => {
  const { result } = outcome
  const isLm = outcome.metric === "heldOutLoss"
  const description: AdapterDescription = {
    id: fields.id,
    name: fields.name ?? fields.id,
    description: `trained on ${path.basename(fields.dataName)} (${outcome.trainSamples} ${
      isLm ? "windows" : "examples"
    }, ${outcome.heldOutSamples} held out)`,
    version: fields.version,
    createdAt: new Date().toISOString(),
    baseModel: fields.baseModel,
    baseModelDigest: fields.baseModelDigest ?? outcome.baseModelDigest,
    training: {
      steps: result.steps,
      finalLoss: result.finalLoss,
      samples: result.samples,
      duration: Math.round(result.durationMs) / 1000
    },
    quality: isLm
      ? {
        heldOutLossBefore: outcome.before,
        heldOutLossAfter: outcome.after,
        perplexityDelta: Math.exp(outcome.after) - Math.exp(outcome.before)
      }
      : { taskAccuracy: outcome.after, probeAccuracy: outcome.before },
    sharing: { public: false, domain: fields.domain ?? "general", license: fields.license ?? "unknown" }
  }
  const classifier = result.head !== undefined && outcome.labels !== undefined
    ? { head: result.head, labels: outcome.labels }
    : undefined
  return { description, classifier }
}
