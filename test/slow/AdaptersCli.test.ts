/**
 * `edge-net-models adapters` as a user runs it, from the compiled CLI: train on a text file (killed
 * mid-run and resumed from its checkpoint to the same weights) and on labelled JSON lines, merge by
 * each method (equal to the library's merge of the stored adapters), PEFT export and import, and
 * sharing refused by a real registry node's reputation gate. Bad input is one line and stores nothing.
 */
import { Effect, Either } from "effect"
import { execFile, spawn } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { AdapterMetadata } from "../../src/compute/lora/Adapter.js"
import { deltaWeight, scaleOf } from "../../src/compute/lora/Adapter.js"
import { loadAdapter } from "../../src/compute/lora/AdapterFile.js"
import { classifierHeadFile } from "../../src/compute/lora/ClassifierHeadFile.js"
import type { MergeMethod } from "../../src/compute/lora/Merge.js"
import { mergeAdapters } from "../../src/compute/lora/Merge.js"
import { compileCli, startCompiledNode } from "../support/CompiledCli.js"
import { plainBody, spamAssassin } from "../support/Corpora.js"
import type { RunningNode } from "../support/NodeProcess.js"
import { tempDir } from "../support/TempDir.js"

const exec = promisify(execFile)
const work = tempDir("adapters-cli-")
const home = path.join(work, "home")
const adapters = path.join(home, ".edge-net", "models", "adapters")
let cli = ""
const nodes: Array<RunningNode> = []

const environment = {
  ...Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== "EDGE_NET_MODELS_CONFIG")),
  HOME: home,
  EDGE_NET_HOME: path.join(work, "no-node")
}
const models = (...args: ReadonlyArray<string>) =>
  exec(process.execPath, [cli, ...args], { env: environment, maxBuffer: 32 * 1024 * 1024 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({
      code: error.code,
      stdout: error.stdout,
      stderr: error.stderr
    })
  )
const json = async <A>(...args: ReadonlyArray<string>): Promise<A> => {
  const result = await models(...args, "--json")
  if (result.code !== 0) throw new Error(`adapters ${args.join(" ")} failed: ${result.stderr}`)
  return JSON.parse(result.stdout.slice(result.stdout.lastIndexOf("\n{") + 1)) as A
}
const stored = (id: string, version = "1.0.0") => Effect.runPromise(loadAdapter(path.join(adapters, id, version)))

interface Trained {
  readonly adapter: AdapterMetadata
  readonly metric: string
  readonly before: number
  readonly after: number
  readonly steps: number
  readonly resumedFrom?: number
}

const mailText = path.join(work, "mail.txt")
const mailLabels = path.join(work, "mail.jsonl")
const lmBase = [
  "models/reference/tiny-lm",
  "--data",
  mailText,
  "--window",
  "32",
  "--batch-size",
  "4",
  "--learning-rate",
  "3e-3"
]
const lmArgs = [...lmBase, "--max-steps", "6", "--seed", "5"]

beforeAll(() => {
  cli = path.join(compileCli(), "src", "cli", "edge-net-models.js")
  const emails = spamAssassin()
  const ham = emails.filter((email) => !email.spam)
  fs.writeFileSync(
    mailText,
    ham.slice(0, 40).map((email) => plainBody(email.body).slice(0, 600).trim()).filter((text) => text.length > 80).join(
      "\n\n"
    ) + "\n"
  )
  const spam = emails.filter((email) => email.spam)
  const rows = ham.slice(200, 220).flatMap((email, index) => [email, spam[index]!])
    .map((email) =>
      JSON.stringify({
        text: `${email.subject}\n${plainBody(email.body).slice(0, 300)}`,
        label: email.spam ? "spam" : "ham"
      })
    )
  fs.writeFileSync(mailLabels, rows.join("\n") + "\n")
}, 120_000)

afterAll(async () => {
  await Promise.all(nodes.map((node) => node.kill("SIGTERM")))
})

describe("edge-net-models adapters", () => {
  it(
    "trains on a text file, resumes a killed run from its checkpoint to the same weights, and lowers the held-out loss",
    async () => {
      // Runs that do not depend on the kill go at the same time.
      const uninterruptedRun = json<Trained>("adapters", "train", ...lmArgs, "--id", "mail", "--version", "2.0.0")
      const attentionRuns = Promise.all([
        models(
          "adapters",
          "train",
          ...lmBase,
          "--id",
          "mail-attn",
          "--target-modules",
          "c_attn",
          "--max-steps",
          "2",
          "--seed",
          "9"
        ),
        models(
          "adapters",
          "train",
          ...lmBase,
          "--id",
          "mail-attn",
          "--version",
          "2.0.0",
          "--target-modules",
          "c_attn",
          "--max-steps",
          "2",
          "--seed",
          "11"
        )
      ])
      // Killed right after its first checkpoint, like a laptop closed mid-run.
      const child = spawn(process.execPath, [
        cli,
        "adapters",
        "train",
        ...lmArgs,
        "--id",
        "mail",
        "--checkpoint-every",
        "1"
      ], { env: environment, stdio: "ignore" })
      const state = path.join(adapters, ".training", "mail@1.0.0", "checkpoint.json")
      const exited = new Promise((resolve) => child.once("exit", resolve))
      while (!fs.existsSync(state) && child.exitCode === null) await new Promise((resolve) => setTimeout(resolve, 20))
      child.kill("SIGKILL")
      await exited
      expect(fs.existsSync(state)).toBe(true)
      expect(fs.existsSync(path.join(adapters, "mail", "1.0.0", "adapter.json"))).toBe(false)

      const resumed = await json<Trained>("adapters", "train", ...lmArgs, "--id", "mail", "--checkpoint-every", "1")
      expect(resumed.resumedFrom).toBeGreaterThanOrEqual(1)
      expect(resumed.resumedFrom).toBeLessThan(6)
      expect(fs.existsSync(path.dirname(state))).toBe(false)
      const uninterrupted = await uninterruptedRun
      expect(uninterrupted.resumedFrom).toBeUndefined()
      expect(resumed.adapter.checksum).toBe(uninterrupted.adapter.checksum)

      expect(resumed.metric).toBe("heldOutLoss")
      expect(resumed.steps).toBe(6)
      expect(resumed.after).toBeLessThan(resumed.before)
      expect(resumed.adapter).toMatchObject({
        baseModel: "tiny-lm",
        rank: 4,
        alpha: 8,
        quality: { heldOutLossBefore: resumed.before, heldOutLossAfter: resumed.after }
      })
      expect(resumed.adapter.baseModelDigest).toBe(
        crypto.createHash("sha256").update(fs.readFileSync("models/reference/tiny-lm/onnx/model.onnx")).digest("hex")
      )

      const [human, second] = await attentionRuns
      expect(human.stderr).toBe("")
      expect(human.stdout).toMatch(/^trained mail-attn@1\.0\.0 .* rank 4 +4 module\(s\)/)
      expect(human.stdout).toMatch(/held-out loss \d\.\d{4} -> \d\.\d{4} nats\/token/)
      expect(second.code).toBe(0)
    },
    300_000
  )

  it(
    "trains a classifier on labelled JSON lines (by prioritized replay) against a linear probe and keeps its head",
    async () => {
      const trained = await json<Trained>(
        "adapters",
        "train",
        "models/reference/tiny-encoder",
        "--data",
        mailLabels,
        "--id",
        "spam",
        "--max-steps",
        "3",
        "--held-out",
        "0.25",
        "--replay-alpha",
        "0.6"
      )
      expect(trained.metric).toBe("heldOutAccuracy")
      expect(trained.before).toBeGreaterThan(0.5)
      expect(trained.after).toBeGreaterThan(0.5)
      expect(trained.adapter.quality).toEqual({ taskAccuracy: trained.after, probeAccuracy: trained.before })
      expect(trained.adapter.classifier?.labels).toEqual(["ham", "spam"])
      expect((await stored("spam")).classifier?.head).toMatchObject({ hidden: 192, classes: 2 })
      const listed = await json<Array<AdapterMetadata>>("adapters", "list")
      expect(listed.map((adapter) => `${adapter.id}@${adapter.version}`)).toEqual([
        "mail@2.0.0",
        "mail-attn@2.0.0",
        "spam@1.0.0"
      ])
    },
    120_000
  )

  it(
    "merges by TIES, DARE and task arithmetic exactly as the library does, and refuses another base model's adapter",
    async () => {
      const inputs = await Promise.all([stored("mail-attn", "1.0.0"), stored("mail-attn", "2.0.0")])
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, MergeMethod]> = [
        [["--method", "ties", "--trim", "0.5", "--sign-election", "majority"], {
          method: "ties",
          trimFraction: 0.5,
          signElection: "majority",
          scalingCoef: 1
        }],
        [["--method", "dare", "--drop-rate", "0.3", "--seed", "42"], {
          method: "dare",
          dropRate: 0.3,
          rescale: true,
          seed: 42
        }],
        [["--method", "task_arithmetic", "--weights", "0.7,0.3"], { method: "task_arithmetic", weights: [0.7, 0.3] }]
      ]
      for (const [flags, method] of cases) {
        const id = `merged-${method.method}`
        const { report } = await json<{ report: { rank: number; random?: { seed: number; draws: number } } }>(
          "adapters",
          "merge",
          "mail-attn@1.0.0",
          "mail-attn@2.0.0",
          ...flags,
          "--id",
          id,
          "--rank",
          "8"
        )
        expect(report.rank).toBe(8)
        if (method.method === "dare") expect(report.random?.seed).toBe(42)
        const expected = mergeAdapters(
          inputs.map(({ metadata, weights }) => ({
            id: metadata.id,
            baseModelDigest: metadata.baseModelDigest,
            weights
          })),
          method,
          { rank: 8 }
        )
        if (Either.isLeft(expected)) throw expected.left
        const merged = await stored(id)
        expect(merged.metadata.baseModelDigest).toBe(inputs[0]!.metadata.baseModelDigest)
        for (const [module, factors] of Object.entries(expected.right.weights.modules)) {
          const want = deltaWeight(factors, 8, scaleOf(expected.right.weights))
          const got = deltaWeight(merged.weights.modules[module]!, merged.weights.rank, scaleOf(merged.weights))
          expect(want.reduce((worst, value, index) => Math.max(worst, Math.abs(value - got[index]!)), 0)).toBeLessThan(
            1e-6
          )
        }
      }
      const refused = await models("adapters", "merge", "mail@2.0.0", "spam", "--method", "ties", "--id", "wrong")
      expect(refused.code).toBe(1)
      expect(refused.stderr).toMatch(
        /^edge-net-models: cannot merge: adapter spam@1\.0\.0 was made for base model [0-9a-f]{64}, .*different base models cannot be merged\n$/
      )
      expect(fs.existsSync(path.join(adapters, "wrong"))).toBe(false)
    },
    120_000
  )

  it(
    "exports to PEFT's layout and imports it back onto the base model; bad input is one line and stores nothing",
    async () => {
      const peft = path.join(work, "peft-mail")
      expect((await models("adapters", "export", "mail@2.0.0", "--output", peft, "--format", "peft")).code).toBe(0)
      expect(fs.readdirSync(peft).sort()).toEqual(["adapter_config.json", "adapter_model.safetensors"])
      const imported = await json<AdapterMetadata>(
        "adapters",
        "import",
        peft,
        "--base-model",
        "models/reference/tiny-lm/onnx/model.onnx",
        "--id",
        "mail-peft"
      )
      const original = await stored("mail", "2.0.0")
      expect(imported.baseModelDigest).toBe(original.metadata.baseModelDigest)
      const back = await stored("mail-peft")
      for (const [module, factors] of Object.entries(original.weights.modules)) {
        expect(Array.from(back.weights.modules[module]!.A)).toEqual(Array.from(factors.A))
      }

      const badRank = await models("adapters", "train", ...lmArgs, "--id", "bad", "--rank", "0")
      expect(badRank).toMatchObject({
        code: 1,
        stderr: "edge-net-models: rank must be a whole number from 1 to 64 (not 0)\n"
      })
      const broken = path.join(work, "broken.jsonl")
      fs.writeFileSync(
        broken,
        `${JSON.stringify({ text: "hi", label: "a" })}\n${
          JSON.stringify({ text: "yo", label: "b" })
        }\n{"text": "no label"}\n`
      )
      const badData = await models(
        "adapters",
        "train",
        "models/reference/tiny-encoder",
        "--data",
        broken,
        "--id",
        "bad"
      )
      expect(badData).toMatchObject({
        code: 1,
        stderr: `edge-net-models: ${broken}:3: needs a "label" (a non-empty string or a whole number 0 or more)\n`
      })
      const badModule = await models("adapters", "train", ...lmArgs, "--id", "bad", "--target-modules", "q_proj")
      expect(badModule.stderr).toMatch(
        /^edge-net-models: no module of the model is or ends with "q_proj" \(such as .*\)\n$/
      )
      const withAdapter = await json<{ text: string }>(
        "run",
        "models/reference/tiny-lm",
        "--prompt",
        "Hi all,",
        "--max-tokens",
        "4",
        "--adapter",
        "mail@2.0.0"
      )
      expect(typeof withAdapter.text).toBe("string")
      const wrongBase = await models("run", "models/reference/tiny-lm", "--prompt", "Hi all,", "--adapter", "spam")
      expect(wrongBase).toMatchObject({ code: 1 })
      expect(wrongBase.stderr).toMatch(
        /^edge-net-models: adapter spam@1\.0\.0 was made for base model tiny-encoder \(sha256 [0-9a-f]{64}\), not this one \(sha256 [0-9a-f]{64}\)\n$/
      )
      const notPulled = await models("adapters", "train", "no-such-model", "--data", mailText, "--id", "bad")
      expect(notPulled).toMatchObject({
        code: 1,
        stderr:
          "edge-net-models: no-such-model is neither a path nor a model pulled here (edge-net-models pull no-such-model brings it)\n"
      })
      expect(fs.existsSync(path.join(adapters, "bad"))).toBe(false)
    },
    120_000
  )

  it(
    "shares through a registry node only with the reputation the network asks for, and with a quality score",
    async () => {
      const root = path.resolve(path.dirname(cli), "..", "..")
      // A fresh key's reputation is the neutral 0.5: refused by the seed's 0.7, let through by a network that asks 0.4.
      const [strict, lenient] = await Promise.all([
        startCompiledNode(root, path.join(work, "strict")),
        startCompiledNode(root, path.join(work, "lenient"), { EDGE_NET_GENESIS: "adapterShareMinReputationPpm=400000" })
      ])
      nodes.push(strict, lenient)
      const { privateKey } = crypto.generateKeyPairSync("ed25519")
      const keyFile = path.join(work, "alice.pem")
      fs.writeFileSync(keyFile, privateKey.export({ format: "pem", type: "pkcs8" }))
      const refused = await models("adapters", "share", "spam", "--key", keyFile, "--registry", strict.url)
      expect(refused.code).toBe(1)
      expect(refused.stderr).toMatch(
        /^edge-net-models: registry .*: alice may not share adapter spam: reputation 0\.50 is not above 0\.70\n$/
      )
      expect(await json<Array<unknown>>("adapters", "list", "--remote", "--registry", strict.url)).toEqual([])

      const unscored = await models("adapters", "share", "mail", "--key", keyFile, "--registry", lenient.url)
      expect(unscored.stderr).toMatch(/has no adapter\.quality score/)
      const shared = await json<{ uploaded: Array<string> }>(
        "adapters",
        "share",
        "spam",
        "--key",
        keyFile,
        "--registry",
        lenient.url
      )
      expect(shared.uploaded.sort()).toEqual(["adapter.json", "adapter.safetensors", classifierHeadFile])
      const remote = await json<Array<{ id: string; baseModel: string; quality?: number }>>(
        "adapters",
        "list",
        "--remote",
        "--registry",
        lenient.url
      )
      expect(remote).toMatchObject([{ id: "spam", baseModel: "tiny-encoder" }])
    },
    120_000
  )
})
