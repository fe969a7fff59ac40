/**
 * A second program asks a real node process to do work over its RPC (one WebSocket, signed by the
 * operator's key): optimize a model from the node's registry and train an adapter on text the program
 * sends, watching each as a stream of progress. The optimized model lands in the node's store, the
 * adapter among the node's adapters, and both jobs are in the node's journal, explained from it.
 */
import { Chunk, Effect, Either, Layer, Stream } from "effect"
import { execFile } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { LoraWeights } from "../../src/compute/lora/Adapter.js"
import { peftAdapterFrom } from "../../src/compute/lora/Peft.js"
import { BlobStore } from "../../src/content/BlobStore.js"
import { pushToRegistry } from "../../src/content/Publish.js"
import { signingClientLayer } from "../../src/rpc/CommandSigning.js"
import { socketProtocol } from "../../src/rpc/NodeConnection.js"
import { cliArgs, type RunningNode, startNode } from "../support/NodeProcess.js"
import { nodeRpcClient } from "../support/RpcClient.js"
import { cacheReferenceModel } from "../support/SdkModels.js"
import { as, operatorKeyOf, testKey } from "../support/Signing.js"
import { tempDir } from "../support/TempDir.js"

const exec = promisify(execFile)

let node: RunningNode
let dataDir: string

beforeAll(async () => {
  dataDir = tempDir("node-jobs-")
  // A fresh key's reputation is the neutral 0.5: a network that asks 0.4 lets the node share adapters.
  node = await startNode(dataDir, undefined, { EDGE_NET_GENESIS: "adapterShareMinReputationPpm=400000" })
  await Effect.runPromise(
    Effect.flatMap(cacheReferenceModel("tiny-lm"), (manifest) => pushToRegistry(node.url, manifest)).pipe(
      Effect.provide(BlobStore.layer({ root: tempDir("node-jobs-local-") }))
    )
  )
}, 60_000)

afterAll(async () => {
  await node?.kill("SIGTERM")
})

/** Runs `use` with an RPC client on one WebSocket to the node, signing as its caller says. */
const withClient = <A, E>(
  use: (client: Effect.Effect.Success<typeof nodeRpcClient>) => Effect.Effect<A, E, never>
) =>
  Effect.runPromise(
    Effect.scoped(Effect.flatMap(nodeRpcClient, use)).pipe(
      Effect.provide(Layer.merge(socketProtocol(node.url), signingClientLayer))
    )
  )

const story = [
  "The keeper of the lighthouse climbed the stairs each evening and lit the lamp before the sun went down.",
  "Ships passed the rocks at night, and their captains watched for the light that the keeper kept burning.",
  "In winter the storms came from the north, and the keeper wrote in his book the names of the ships he saw.",
  "When the fog was thick he rang the bell, and the sound went out over the water to the boats near the shore."
]
const text = Array.from({ length: 12 }, (_, i) => story[i % story.length]).join("\n\n")

describe("jobs through a node's RPC", () => {
  it(
    "optimizes a registry model and trains an adapter for another program, streaming progress into the journal",
    async () => {
      const operator = operatorKeyOf(dataDir)
      const { optimized, trained } = await withClient((client) =>
        Effect.gen(function*() {
          const optimized = yield* as(operator)(
            Stream.runCollect(client.OptimizerRun({
              model: { id: "tiny-lm" },
              settings: { quantization: "INT8", qualityBar: { cosine: 0.5 } },
              calibrationTexts: story
            }))
          )
          const trained = yield* as(operator)(
            Stream.runCollect(client.AdapterTrain({
              base: { id: "tiny-lm" },
              data: { content: text, name: "lighthouse.txt" },
              settings: { rank: 2, maxSteps: 4, batchSize: 2, window: 32, seed: 1 },
              adapter: { id: "lighthouse", version: "1.0.0", domain: "stories" }
            }))
          )
          return { optimized: Chunk.toArray(optimized), trained: Chunk.toArray(trained) }
        })
      )

      // The optimizer's progress: pipeline steps, each job step as recorded, then the outcome.
      expect(optimized.some((event) => event._tag === "OptimizeStep" && event.step === "validate")).toBe(true)
      const recorded = optimized.flatMap((event) => (event._tag === "OptimizeRecorded" ? [event.status] : []))
      expect(recorded).toEqual(["requested", "completed"])
      const finished = optimized.at(-1)!
      if (finished._tag !== "OptimizeFinished") throw new Error(`the stream ended with ${finished._tag}`)
      expect(finished.status).toBe("completed")
      expect(finished.report.cosine).toBeGreaterThan(0.5)
      expect(finished.report.sizeRatio).toBeLessThan(0.6)
      // The optimized model is in the node's store under the digest the outcome names.
      const blob = await fetch(`${node.url}/v1/blobs/sha256-${finished.artifact.sha256}`)
      expect(blob.status).toBe(200)
      expect((await blob.arrayBuffer()).byteLength).toBe(finished.artifact.size)

      // Training's progress: phases, each step with its loss, the recorded job, the outcome.
      const phases = trained.flatMap((event) => (event._tag === "TrainingPhase" ? [event.phase] : []))
      expect(phases).toEqual(["baseline", "train", "evaluate"])
      const steps = trained.flatMap((event) => (event._tag === "TrainingStep" ? [event] : []))
      expect(steps.map((step) => step.step)).toEqual([1, 2, 3, 4])
      steps.forEach((step) => expect(Number.isFinite(step.loss)).toBe(true))
      const done = trained.at(-1)!
      if (done._tag !== "TrainingFinished") throw new Error(`the stream ended with ${done._tag}`)
      expect(done.adapter).toMatchObject({ id: "lighthouse", version: "1.0.0" })
      expect(done.metric).toBe("heldOutLoss")
      expect(done.after).toBeLessThan(done.before)
      // Stored where the node's inference finds adapters.
      expect(fs.existsSync(path.join(dataDir, "content", "adapters", "lighthouse", "1.0.0"))).toBe(true)

      // Both jobs in the node's journal, explained from it, and the log still verifies with them.
      const { optimizerJob, trainingJob, verify } = await withClient((client) =>
        Effect.all({
          optimizerJob: client.AuditExplain({ kind: "optimizer-job", id: finished.jobId }),
          trainingJob: client.AuditExplain({ kind: "training-job", id: done.jobId }),
          verify: client.AuditVerify()
        })
      )
      expect(optimizerJob.events.map((event) => event.eventType)).toEqual(["JobRequested", "JobCompleted"])
      expect(optimizerJob.why).toMatch(/asked for INT8 of model tiny-lm .* 4 calibration samples/)
      expect(optimizerJob.events.every((event) => event.commandId !== null)).toBe(true)
      expect(trainingJob.events.map((event) => event.eventType)).toEqual(["TrainingRequested", "TrainingCompleted"])
      expect(trainingJob.why).toMatch(/adapter lighthouse@1\.0\.0 on tiny-lm .* from lighthouse\.txt/)
      expect(verify.ok).toBe(true)
      expect(verify.commandsChecked).toBeGreaterThanOrEqual(2)
    },
    120_000
  )

  it(
    "the CLI is a client of the same RPC: `jobs optimize` against the running node, `jobs show` reads it back",
    async () => {
      // With --json the CLI prints one JSON line per progress update, then the outcome (indented JSON).
      const cli = async (...args: ReadonlyArray<string>) => {
        const { stdout } = await exec(
          process.execPath,
          cliArgs(...args, "--node", node.url, "--data", dataDir, "--json"),
          {
            timeout: 90_000
          }
        )
        return { stdout: stdout.slice(stdout.lastIndexOf("\n{\n") + 1) }
      }
      const optimized = JSON.parse((await cli("jobs", "optimize", "tiny-lm", "--quantization", "INT4")).stdout) as {
        _tag: string
        jobId: string
        status: string
        artifact: { sha256: string }
      }
      expect(optimized).toMatchObject({ _tag: "OptimizeFinished", status: "completed" })
      const shown = JSON.parse((await cli("jobs", "show", "optimize", optimized.jobId)).stdout) as {
        why: string
        events: Array<{ eventType: string }>
      }
      expect(shown.events.map((event) => event.eventType)).toEqual(["JobRequested", "JobCompleted"])
      expect(shown.why).toContain(`It completed: sha256 ${optimized.artifact.sha256.slice(0, 12)}`)
    },
    120_000
  )

  it(
    "refuses a job from a key that is not the operator's, and a model the node does not hold, writing nothing",
    async () => {
      const stranger = testKey("stranger")
      const operator = operatorKeyOf(dataDir)
      const [notOperator, unknownModel] = await withClient((client) =>
        Effect.all([
          as(stranger)(Effect.either(Stream.runCollect(client.OptimizerRun({
            model: { id: "tiny-lm" },
            settings: { quantization: "INT8" }
          })))),
          as(operator)(Effect.either(Stream.runCollect(client.AdapterTrain({
            base: { sha256: "0".repeat(64), tokenizer: "1".repeat(64) },
            data: { content: text, name: "lighthouse.txt" },
            settings: { rank: 2, maxSteps: 1 },
            adapter: { id: "nothing", version: "1.0.0" }
          }))))
        ])
      )
      expect(Either.isLeft(notOperator) && notOperator.left.message).toMatch(
        /^OptimizerRun refused: needs 1 of the 1 operator key\(s\), signed by 0$/
      )
      expect(Either.isLeft(unknownModel) && unknownModel.left.message).toBe(
        `blob sha256-${
          "0".repeat(64)
        } is not in this node's content store (publish a manifest that lists it, then upload it, or name a registry model by id)`
      )
    },
    60_000
  )

  it(
    "records a job the quality bar refuses and stores nothing of it; a blob the node does not hold starts no job",
    async () => {
      const operator = operatorKeyOf(dataDir)
      const [refused, unknownModel] = await withClient((client) =>
        Effect.all([
          as(operator)(Stream.runCollect(client.OptimizerRun({
            model: { id: "tiny-lm" },
            settings: { quantization: "INT4", blockSize: 128, qualityBar: { cosine: 0.999999 } }
          }))),
          as(operator)(Effect.either(Stream.runCollect(client.OptimizerRun({
            model: { sha256: "0".repeat(64) },
            settings: { quantization: "INT8" }
          }))))
        ])
      )
      const events = Chunk.toArray(refused)
      const recorded = events.flatMap((event) => (event._tag === "OptimizeRecorded" ? [event.status] : []))
      expect(recorded).toEqual(["requested", "refused"])
      const finished = events.at(-1)!
      if (finished._tag !== "OptimizeFinished") throw new Error(`the stream ended with ${finished._tag}`)
      expect(finished.status).toBe("refused")
      expect(finished.reasons.join(" ")).toContain("cosine")
      // (Block size 128: no other test made these bytes.)
      expect((await fetch(`${node.url}/v1/blobs/sha256-${finished.artifact.sha256}`)).status).toBe(404)
      expect(Either.isLeft(unknownModel) && unknownModel.left).toMatchObject({
        _tag: "ModelSourceError",
        reason: expect.stringContaining(`blob sha256-${"0".repeat(64)} is not in this node's content store`)
      })
    },
    60_000
  )

  it(
    "keeps adapters for another program: imports PEFT, merges, exports and shares under the node's key",
    async () => {
      const operator = operatorKeyOf(dataDir)
      const peftFiles = (name: string) => ({
        config: fs.readFileSync(`test/fixtures/peft/${name}/adapter_config.json`, "utf8"),
        weights: new Uint8Array(fs.readFileSync(`test/fixtures/peft/${name}/adapter_model.safetensors`))
      })
      const outcome = await withClient((client) =>
        Effect.gen(function*() {
          const plain = yield* client.AdapterImportPeft({
            ...peftFiles("tiny-lm"),
            base: { id: "tiny-lm" },
            adapter: { id: "peft-plain", version: "1.0.0", domain: "stories" }
          })
          yield* client.AdapterImportPeft({
            ...peftFiles("tiny-lm-rslora"),
            base: { id: "tiny-lm" },
            adapter: { id: "peft-rs", version: "1.0.0", domain: "stories" }
          })
          const merged = yield* client.AdapterMerge({
            adapters: [{ id: "peft-plain" }, { id: "peft-rs", version: "1.0.0" }],
            spec: { method: "task_arithmetic", weights: [0.5, 0.5] },
            adapter: { id: "blend", version: "1.0.0", domain: "stories" },
            rank: 16
          })
          const document = yield* client.AdapterExport({ id: "blend", format: "json" })
          const peft = yield* client.AdapterExport({ id: "blend", format: "peft" })
          const tooLarge = yield* Effect.either(client.AdapterImport({
            document: document._tag === "AdapterDocument" ? document.document : ""
          }))
          // A small adapter's document, stored again under another id, then once more.
          const small = yield* client.AdapterExport({ id: "peft-rs", format: "json" })
          const copy = JSON.stringify({
            ...JSON.parse(small._tag === "AdapterDocument" ? small.document : "{}"),
            id: "peft-rs-copy"
          })
          const imported = yield* client.AdapterImport({ document: copy })
          const again = yield* Effect.either(client.AdapterImport({ document: copy }))
          const shared = yield* client.AdapterShare({ id: "blend", quality: 0.8 })
          return { plain, merged, document, peft, tooLarge, imported, again, shared }
        }).pipe(as(operator))
      )
      const { document, merged, peft, plain, shared } = outcome
      const modelDigest = crypto.createHash("sha256")
        .update(fs.readFileSync("models/reference/tiny-lm/onnx/model.onnx"))
        .digest("hex")
      expect(plain).toMatchObject({ baseModel: "tiny-lm", baseModelDigest: modelDigest })
      expect(merged.report).toMatchObject({ adapters: ["peft-plain@1.0.0", "peft-rs@1.0.0"], rank: 16 })

      // The merged update, read back from the PEFT export, is half of each input's: ΔW = (alpha / r) B A.
      const weightsOf = (files: { config: string; weights: Uint8Array }) => {
        const adapter = peftAdapterFrom(JSON.parse(files.config), files.weights)
        if (Either.isLeft(adapter)) throw new Error(adapter.left.problem)
        return adapter.right.weights
      }
      const deltaOf = (weights: LoraWeights, module: string) => {
        const { A, B, inFeatures, outFeatures } = weights.modules[module]!
        const delta = new Float64Array(outFeatures * inFeatures)
        for (let o = 0; o < outFeatures; o++) {
          for (let r = 0; r < weights.rank; r++) {
            const b = B[o * weights.rank + r]! * weights.alpha / weights.rank
            for (let i = 0; i < inFeatures; i++) delta[o * inFeatures + i]! += b * A[r * inFeatures + i]!
          }
        }
        return delta
      }
      if (peft._tag !== "PeftFiles") throw new Error(`export gave ${peft._tag}`)
      const exported = weightsOf(peft)
      const inputs = [weightsOf(peftFiles("tiny-lm")), weightsOf(peftFiles("tiny-lm-rslora"))]
      const modules = Object.keys(exported.modules)
      expect(modules).toHaveLength(4)
      for (const module of modules) {
        // PEFT names the modules as the model does without the ONNX export's prefix; match by suffix.
        // An input without the module adds nothing to it (the two fixtures adapt different layers).
        const got = deltaOf(exported, module)
        const [a, b] = inputs.map((weights) => {
          const name = Object.keys(weights.modules).find((name) => module === name || module.endsWith(`.${name}`))
          return name === undefined ? new Float64Array(got.length) : deltaOf(weights, name)
        })
        let error = 0
        let norm = 0
        got.forEach((value, i) => {
          const want = 0.5 * a![i]! + 0.5 * b![i]!
          error += (value - want) ** 2
          norm += want ** 2
        })
        expect(Math.sqrt(error / norm)).toBeLessThan(1e-4)
      }

      // The JSON export is the seed's one document; importing it again where it is stored is refused.
      if (document._tag !== "AdapterDocument") throw new Error(`export gave ${document._tag}`)
      expect(JSON.parse(document.document)).toMatchObject({ id: "blend", checksum: merged.adapter.checksum })
      // A document larger than a signed command may be is refused in one line (the registry carries those).
      expect(Either.isLeft(outcome.tooLarge) && outcome.tooLarge.left.message).toBe(
        "AdapterImport refused: JSON value larger than 262144 bytes"
      )
      expect(outcome.imported).toMatchObject({ id: "peft-rs-copy", rank: 2, baseModelDigest: modelDigest })
      expect(Either.isLeft(outcome.again) && outcome.again.left.message).toBe(
        "adapter document: adapter peft-rs-copy@1.0.0 is already stored here"
      )

      // Shared through the node's own registry, under a manifest its key signed.
      const { info, listed, stored, stranger } = await withClient((client) =>
        Effect.all({
          info: client.NodeInfo(),
          listed: client.AdapterList({ baseModel: "tiny-lm" }),
          stored: client.AdaptersStored({ domain: "stories" }),
          stranger: Effect.either(as(testKey("stranger"))(client.AdapterExport({ id: "blend", format: "json" })))
        })
      )
      expect(shared).toMatchObject({ kind: "adapter", id: "blend", version: "1.0.0", keyId: info.nodeId })
      expect(listed.find((row) => row.id === "blend")).toMatchObject({ keyId: info.nodeId, quality: 0.8 })
      expect(stored.adapters.map((adapter) => adapter.id).sort()).toEqual(
        expect.arrayContaining(["blend", "peft-plain", "peft-rs"])
      )
      expect(Either.isLeft(stranger) && stranger.left.message).toBe(
        "AdapterExport refused: needs 1 of the 1 operator key(s), signed by 0"
      )
    },
    60_000
  )

  it(
    "`edge-net adapters` is a client of the same RPC: merge, list and export against the running node",
    async () => {
      // Uses the adapters the test above imported into the node.
      const cli = async (...args: ReadonlyArray<string>) => {
        const { stdout } = await exec(
          process.execPath,
          cliArgs("adapters", ...args, "--node", node.url, "--data", dataDir, "--json"),
          { timeout: 60_000 }
        )
        return JSON.parse(stdout) as unknown
      }
      const merged = await cli("merge", "peft-plain", "peft-rs@1.0.0", "--method", "ties", "--id", "blend-ties")
      expect(merged).toMatchObject({
        adapter: { id: "blend-ties", version: "1.0.0" },
        report: { method: { method: "ties", trimFraction: 0.8 } }
      })
      const listed = await cli("list", "--base-model", "tiny-lm") as { adapters: Array<{ id: string }> }
      expect(listed.adapters.map((adapter) => adapter.id)).toContain("blend-ties")
      const out = path.join(tempDir("node-adapters-export-"), "blend-ties")
      await cli("export", "blend-ties", "--output", out, "--format", "peft")
      const config = JSON.parse(fs.readFileSync(path.join(out, "adapter_config.json"), "utf8")) as { r: number }
      expect(config.r).toBe(4)
      expect(fs.statSync(path.join(out, "adapter_model.safetensors")).size).toBeGreaterThan(1000)
      const missing = await exec(
        process.execPath,
        cliArgs("adapters", "export", "nothing", "--output", out, "--node", node.url, "--data", dataDir)
      ).catch((error: { stderr: string; code: number }) => error)
      expect(missing).toMatchObject({ code: 1 })
      expect((missing as { stderr: string }).stderr.trim().split("\n")).toHaveLength(1)
    },
    60_000
  )
})
