/**
 * A second program asks a real node process to do work over its RPC (one WebSocket, signed by the
 * operator's key): optimize a model from the node's registry and train an adapter on text the program
 * sends, watching each as a stream of progress. The optimized model lands in the node's store, the
 * adapter among the node's adapters, and both jobs are in the node's journal, explained from it.
 */
import { Chunk, Effect, Either, Layer, Stream } from "effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
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
  node = await startNode(dataDir)
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
})
