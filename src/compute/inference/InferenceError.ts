/**
 * Errors of the inference service, each one readable line: a model that cannot be loaded, input the
 * model cannot take, or a run the runtime rejected.
 */
import { Data } from "effect"

/** The model folder or bytes are unusable: not ONNX, missing files, inputs or outputs it needs. */
export class ModelLoadError extends Data.TaggedError("ModelLoadError")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

/** What was asked of a loaded model does not fit it: empty text, an encoder asked to generate, bad options. */
export class InferenceInputError extends Data.TaggedError("InferenceInputError")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

/** The runtime failed while running the model. */
export class InferenceRunError extends Data.TaggedError("InferenceRunError")<{ readonly reason: string }> {
  override get message() {
    return `inference failed: ${this.reason}`
  }
}

export const describeCause = (cause: unknown) =>
  (cause instanceof Error ? cause.message : String(cause)).split("\n")[0]!.trim()
