/**
 * Our adapter directory: what is saved loads back the same, the checksum is the weights file's SHA-256,
 * the signature covers metadata and weights and answers to a trust policy, and an adapter refuses a
 * base model file other than the one it names.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import type { LoraWeights } from "../../../src/compute/lora/Adapter.js"
import type { AdapterDescription, AdapterFileError } from "../../../src/compute/lora/AdapterFile.js"
import {
  adapterMetadataFile,
  adapterWeightsFile,
  checkBaseModel,
  loadAdapter,
  saveAdapter
} from "../../../src/compute/lora/AdapterFile.js"
import { classifierHeadFile } from "../../../src/compute/lora/ClassifierHeadFile.js"
import { float16ToFloat32, float32ToFloat16 } from "../../../src/compute/onnx/Tensors.js"
import { trustPolicy } from "../../../src/content/ManifestSigning.js"
import { keyPairFromSeed } from "../../../src/content/NodeKey.js"
import { tempDir } from "../../support/TempDir.js"

const sha256 = (bytes: Uint8Array) => crypto.createHash("sha256").update(bytes).digest("hex")
const encoderFile = "models/reference/tiny-encoder/model.onnx"
const encoderDigest = sha256(fs.readFileSync(encoderFile))

const seeded = (seed: number) => {
  let state = seed
  return () => ((state = (state * 1103515245 + 12345) >>> 0) / 2 ** 32) - 0.5
}

const weights = (rank: number, seed = 1): LoraWeights => {
  const next = seeded(seed)
  const module = (inFeatures: number, outFeatures: number) => ({
    inFeatures,
    outFeatures,
    A: Float32Array.from({ length: rank * inFeatures }, next),
    B: Float32Array.from({ length: outFeatures * rank }, next)
  })
  return {
    rank,
    alpha: 2 * rank,
    modules: { "layers.0.query": module(192, 192), "layers.1.intermediate": module(192, 512) }
  }
}

const description: AdapterDescription = {
  id: "legal-encoder",
  name: "Legal vocabulary",
  description: "tiny-encoder adapted to contract language",
  version: "1.0.0",
  createdAt: "2026-11-22T10:00:00Z",
  baseModel: "tiny-encoder",
  baseModelDigest: encoderDigest,
  training: { steps: 100, finalLoss: 1.25, samples: 400, duration: 12.5 },
  quality: { taskAccuracy: 0.91 },
  sharing: { public: true, domain: "legal", license: "MIT" }
}

const publisher = keyPairFromSeed(new Uint8Array(32).fill(7))
const signer = { keyId: "alice", publicKey: publisher.publicKey, sign: (message: string) => publisher.sign(message) }
const stranger = keyPairFromSeed(new Uint8Array(32).fill(9))

const failure = <A>(effect: Effect.Effect<A, AdapterFileError>) =>
  Effect.map(Effect.flip(effect), (error) => {
    expect(error.message).not.toContain("\n")
    return error
  })

const editJson = (file: string, edit: (json: Record<string, unknown>) => void) => {
  const json = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>
  edit(json)
  fs.writeFileSync(file, JSON.stringify(json))
}

describe("AdapterFile", () => {
  it.effect("saves adapter.json and adapter.safetensors and loads them back unchanged", () =>
    Effect.gen(function*() {
      const directory = tempDir("adapter-")
      const original = weights(4)
      const metadata = yield* saveAdapter(directory, description, original)
      expect(fs.readdirSync(directory).sort()).toEqual([adapterMetadataFile, adapterWeightsFile])
      expect(metadata).toMatchObject({ rank: 4, alpha: 8, targetModules: ["layers.0.query", "layers.1.intermediate"] })
      expect(metadata.checksum).toBe(sha256(fs.readFileSync(path.join(directory, adapterWeightsFile))))
      const loaded = yield* loadAdapter(directory)
      expect(loaded.metadata).toEqual(metadata)
      expect(loaded.weights).toEqual(original)
    }))

  it.effect("stores F16 weights in half the bytes, rounded to half precision", () =>
    Effect.gen(function*() {
      const full = tempDir("adapter-")
      const half = tempDir("adapter-")
      const original = weights(4)
      yield* saveAdapter(full, description, original)
      yield* saveAdapter(half, description, original, { dtype: "F16" })
      const size = (directory: string) => fs.statSync(path.join(directory, adapterWeightsFile)).size
      expect(size(half)).toBeLessThan(size(full) * 0.51)
      const loaded = yield* loadAdapter(half)
      const module = loaded.weights.modules["layers.1.intermediate"]!
      expect(module.B).toEqual(float16ToFloat32(float32ToFloat16(original.modules["layers.1.intermediate"]!.B)))
    }))

  it.effect("refuses weights whose SHA-256 is not the checksum, naming both digests", () =>
    Effect.gen(function*() {
      const directory = tempDir("adapter-")
      const metadata = yield* saveAdapter(directory, description, weights(2))
      const file = path.join(directory, adapterWeightsFile)
      const bytes = fs.readFileSync(file)
      bytes[bytes.length - 1]! ^= 1
      fs.writeFileSync(file, bytes)
      const error = yield* failure(loadAdapter(directory))
      expect(error.kind).toBe("Checksum")
      expect(error.message).toBe(`${file}: has sha256 ${sha256(bytes)}, but adapter.json says ${metadata.checksum}`)
    }))

  it.effect("refuses weights whose safetensors header is malformed, naming the file and the tensor", () =>
    Effect.gen(function*() {
      const directory = tempDir("adapter-")
      yield* saveAdapter(directory, description, weights(2))
      const file = path.join(directory, adapterWeightsFile)
      // A header whose one tensor has a dtype the reader does not take, the checksum updated to match.
      const header = new TextEncoder().encode(
        JSON.stringify({ "layers.0.query.lora_A": { dtype: "I8", shape: [4], data_offsets: [0, 4] } })
      )
      const bytes = new Uint8Array(8 + header.length + 4)
      new DataView(bytes.buffer).setBigUint64(0, BigInt(header.length), true)
      bytes.set(header, 8)
      fs.writeFileSync(file, bytes)
      editJson(path.join(directory, adapterMetadataFile), (json) => (json.checksum = sha256(bytes)))
      const error = yield* failure(loadAdapter(directory))
      expect(error.kind).toBe("Invalid")
      expect(error.message).toBe(
        `${file}: not a valid safetensors file: tensor "layers.0.query.lora_A" has dtype "I8"; this reader takes F32, F16 and BF16`
      )
    }))

  it.effect("signs the metadata, checksum included, and verifies it against a trust policy", () =>
    Effect.gen(function*() {
      const directory = tempDir("adapter-")
      const metadata = yield* saveAdapter(directory, description, weights(2), { signer })
      expect(metadata.signature).toMatchObject({ keyId: "alice", publicKey: publisher.publicKey })
      const trusted = trustPolicy([["alice", publisher.publicKey]])
      expect((yield* loadAdapter(directory, { trust: trusted })).metadata).toEqual(metadata)
      // A trusted key under another name is the same signer.
      yield* loadAdapter(directory, { trust: trustPolicy([["alice-laptop", publisher.publicKey]]) })
      const untrusted = yield* failure(loadAdapter(directory, { trust: trustPolicy([["bob", stranger.publicKey]]) }))
      expect(untrusted.kind).toBe("UntrustedKey")
      expect(untrusted.problem).toBe("adapter legal-encoder@1.0.0 is signed by untrusted key alice")

      editJson(path.join(directory, adapterMetadataFile), (json) => (json.baseModelDigest = "0".repeat(64)))
      const tampered = yield* failure(loadAdapter(directory))
      expect(tampered.kind).toBe("BadSignature")
      expect(tampered.problem).toBe("adapter legal-encoder@1.0.0: the signature by key alice does not verify")
    }))

  it.effect("accepts an unsigned adapter unless a signature is required", () =>
    Effect.gen(function*() {
      const directory = tempDir("adapter-")
      yield* saveAdapter(directory, description, weights(2))
      yield* loadAdapter(directory)
      expect((yield* failure(loadAdapter(directory, { requireSignature: true }))).problem).toBe(
        "adapter legal-encoder@1.0.0 is not signed"
      )
      expect((yield* failure(loadAdapter(directory, { trust: trustPolicy([["alice", publisher.publicKey]]) }))).kind)
        .toBe("Unsigned")
    }))

  it.effect("re-saving loaded metadata without a signer drops the old signature instead of keeping a stale one", () =>
    Effect.gen(function*() {
      const directory = tempDir("adapter-")
      const signed = yield* saveAdapter(directory, description, weights(2), { signer })
      const again = yield* saveAdapter(tempDir("adapter-"), signed, weights(2, 5))
      expect(again.signature).toBeUndefined()
      expect(again.checksum).not.toBe(signed.checksum)
    }))

  it.effect("refuses invalid metadata and mismatched weights with one line naming the field", () =>
    Effect.gen(function*() {
      const directory = tempDir("adapter-")
      yield* saveAdapter(directory, description, weights(2))
      const metadataFile = path.join(directory, adapterMetadataFile)
      const original = fs.readFileSync(metadataFile, "utf8")
      const problemWith = (edit: (json: Record<string, unknown>) => void) => {
        fs.writeFileSync(metadataFile, original)
        editJson(metadataFile, edit)
        return Effect.map(failure(loadAdapter(directory)), (error) => error.problem)
      }
      expect(yield* problemWith((json) => (json.rank = 0))).toBe("rank must be a whole number from 1 to 1024")
      expect(yield* problemWith((json) => delete json.baseModelDigest)).toBe("baseModelDigest is missing")
      expect(yield* problemWith((json) => (json.training = { steps: -1, finalLoss: 1, samples: 1, duration: 1 }))).toBe(
        "training.steps must be a whole number, 0 or more"
      )
      expect(yield* problemWith((json) => (json.rank = 4))).toBe(
        "module layers.0.query: lora_A [2, 192] and lora_B [192, 2] are not rank 4 ([rank, in] and [out, rank])"
      )
      expect(yield* problemWith((json) => (json.targetModules = ["layers.0.query"]))).toBe(
        "holds modules layers.0.query, layers.1.intermediate, but targetModules lists layers.0.query"
      )
      fs.writeFileSync(metadataFile, "{ not json")
      expect((yield* failure(loadAdapter(directory))).problem).toMatch(/^is not JSON/)
      const missing = yield* failure(loadAdapter(path.join(directory, "nowhere")))
      expect(missing.kind).toBe("FileSystem")
    }))

  it.effect("applies only to the base model file whose SHA-256 it names", () =>
    Effect.gen(function*() {
      const metadata = yield* saveAdapter(tempDir("adapter-"), description, weights(2))
      expect(yield* checkBaseModel(metadata, encoderFile)).toBe(encoderDigest)
      const lmFile = "models/reference/tiny-lm/onnx/model.onnx"
      const error = yield* failure(checkBaseModel(metadata, lmFile))
      expect(error.kind).toBe("BaseModelMismatch")
      expect(error.message).toBe(
        `${lmFile}: adapter legal-encoder was made for base model tiny-encoder with sha256 ${encoderDigest}, but this file has sha256 ${
          sha256(fs.readFileSync(lmFile))
        }`
      )
    }))

  it.effect("keeps a classifier's head beside the factors, under the checksum and the signature", () =>
    Effect.gen(function*() {
      const directory = tempDir()
      const head = {
        hidden: 192,
        classes: 2,
        weight: Float32Array.from({ length: 384 }, seeded(5)),
        bias: Float32Array.of(0.25, -0.25)
      }
      const saved = yield* saveAdapter(directory, description, weights(2), {
        signer,
        classifier: { head, labels: ["ham", "spam"] }
      })
      expect(saved.classifier?.labels).toEqual(["ham", "spam"])
      expect(saved.classifier?.checksum).toBe(sha256(fs.readFileSync(path.join(directory, classifierHeadFile))))
      const loaded = yield* loadAdapter(directory, { trust: trustPolicy([["alice", publisher.publicKey]]) })
      expect(loaded.classifier?.labels).toEqual(["ham", "spam"])
      expect(Array.from(loaded.classifier!.head.weight)).toEqual(Array.from(head.weight))
      expect(Array.from(loaded.classifier!.head.bias)).toEqual(Array.from(head.bias))

      const file = path.join(directory, classifierHeadFile)
      const bytes = fs.readFileSync(file)
      bytes[bytes.length - 1]! ^= 1
      fs.writeFileSync(file, bytes)
      const tampered = yield* failure(loadAdapter(directory))
      expect(tampered.message).toMatch(
        /classifier\.safetensors: has sha256 [0-9a-f]{64}, but adapter\.json says [0-9a-f]{64}$/
      )

      const mismatched = yield* failure(
        saveAdapter(tempDir(), description, weights(2), { classifier: { head, labels: ["only one"] } })
      )
      expect(mismatched.message).toMatch(/1 label\(s\) for 2 classes$/)
    }))
})
