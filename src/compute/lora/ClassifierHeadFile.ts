/**
 * A classification adapter's head beside its LoRA factors: `classifier.safetensors` with `weight`
 * [hidden, classes], `bias` [classes] and the class names in its metadata (`labels`, JSON), like the
 * `modules_to_save` head PEFT stores with a sequence-classification adapter. adapter.json names its
 * SHA-256, so the adapter's checksum and signature cover it (AdapterFile.ts).
 */
import { Either, Schema } from "effect"
import { jsonDecoder } from "../../domain/JsonText.js"
import { readSafetensors, writeSafetensors } from "./Safetensors.js"
import type { ClassifierHead } from "./train/ClassifierHead.js"

export const classifierHeadFile = "classifier.safetensors"

export const encodeClassifierHead = (head: ClassifierHead, labels: ReadonlyArray<string>): Uint8Array =>
  writeSafetensors(
    [
      ["weight", { dtype: "F32", shape: [head.hidden, head.classes], data: head.weight }],
      ["bias", { dtype: "F32", shape: [head.classes], data: head.bias }]
    ],
    { labels: JSON.stringify(labels) }
  )

const decodeLabels = jsonDecoder(Schema.Array(Schema.String))

/** The head and its class names, or a one-line reason the bytes are not one. */
export const decodeClassifierHead = (
  bytes: Uint8Array
): { readonly head: ClassifierHead; readonly labels: ReadonlyArray<string> } | string => {
  const { tensors, metadata } = readSafetensors(bytes)
  const weight = tensors.get("weight")
  const bias = tensors.get("bias")
  if (weight === undefined || bias === undefined || weight.shape.length !== 2) {
    return "a classifier head needs weight [hidden, classes] and bias [classes]"
  }
  const [hidden, classes] = weight.shape as [number, number]
  if (bias.shape.length !== 1 || bias.shape[0] !== classes) {
    return `bias [${bias.shape.join(", ")}] does not match weight [${hidden}, ${classes}]`
  }
  const decoded = decodeLabels(metadata["labels"] ?? "[]", "labels")
  if (Either.isLeft(decoded)) return decoded.left.message
  const labels = decoded.right
  if (labels.length !== classes) return `${labels.length} label(s) for ${classes} classes`
  return { head: { hidden, classes, weight: weight.data, bias: bias.data }, labels }
}
