/**
 * LoRA benchmarks, one section per subject, run in order by `run`: vector MicroLoRA forward and
 * backward throughput against the seed's published figure and against PyTorch on the CPU (one thread,
 * same shapes, tools/lora_torch_bench.py); the time to train a rank-4 adapter on 100 windows of the
 * reference LM against the seed's 5-minute target and PyTorch running the same training
 * (tools/lora_torch_train.py); and ONNX Runtime latency of the base model, the model with adapter
 * branches fed as inputs, and the adapter merged into the weights.
 */
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { availableParallelism, tmpdir } from "node:os"
import path from "node:path"
import type { LoraWeights } from "../src/compute/lora/Adapter.js"
import { adapterLayout, feedsFor, injectAdapterInputs, mergeAdapter } from "../src/compute/lora/GraphLora.js"
import {
  backwardMicroLora,
  forwardMicroLora,
  forwardMicroLoraInt8,
  makeMicroLora,
  quantizeRows
} from "../src/compute/lora/MicroLora.js"
import { simdDotProducts } from "../src/compute/lora/train/SimdDotProducts.js"
import { scalarDotProducts } from "../src/compute/lora/train/Tensor.js"
import { writeModel } from "../src/compute/onnx/OnnxModel.js"
import { textFeeds } from "../src/compute/optimize/Feeds.js"
import { createSession, latencyMs, run as runSession } from "../src/compute/optimize/Runner.js"
import { domainAdaptation, referenceModel } from "../test/support/LoraTasks.js"
import { bestOf, report } from "./Report.js"
import { writeTorchInputs } from "./support/LoraTorchInputs.js"
import { peakRssMb, resetPeakRss } from "./support/PeakRss.js"
import type { TorchBlas } from "./support/TorchBlas.js"
import { blasLabel, torchBaselineRefusal } from "./support/TorchBlas.js"

/** The seed's MicroLoRA: 2,236 vectors/s at rank 2, width 256, batch 32; the issue asks for 100x. */
const SEED_VECTORS_PER_SECOND = 2236
const python = "/usr/bin/python3"

interface TorchFigures extends TorchBlas {
  readonly torch: string
  readonly forward: number
  readonly backward: number
}

/**
 * The JSON figures a tools/*.py baseline printed, or why there are none (no python, no torch, a crash,
 * or a PyTorch on the reference BLAS, which the scripts and then this refuse to compare against).
 */
const pythonFigures = <Figures extends TorchBlas>(
  script: string,
  args: ReadonlyArray<string>,
  timeoutMs: number
): (Figures & { readonly peakRssMb: number }) | string => {
  // Through GNU time, whose last line on stderr is the script's peak RSS.
  const result = spawnSync("/usr/bin/time", ["-f", "peak-rss-kb %M", python, script, ...args], {
    encoding: "utf8",
    timeout: timeoutMs
  })
  if (result.error !== undefined) return `${python} did not run (${result.error.message})`
  const stderr = result.stderr.trim().split("\n")
  const peak = /^peak-rss-kb (\d+)$/.exec(stderr.at(-1) ?? "")
  if (peak !== null) stderr.pop()
  if (result.status !== 0) {
    return `${script} exited with ${result.status ?? result.signal}: ${stderr.at(-1) ?? ""}`
  }
  try {
    const figures = JSON.parse(result.stdout) as Figures | { readonly unavailable: string }
    if (typeof figures !== "object" || figures === null) return `${script} printed ${result.stdout.trim()}`
    if ("unavailable" in figures) return figures.unavailable
    return torchBaselineRefusal(figures) ??
      { ...figures, peakRssMb: peak === null ? Number.NaN : Number(peak[1]) / 1024 }
  } catch {
    return `${script} printed no JSON: ${result.stdout.trim().slice(0, 200)}`
  }
}

/** PyTorch's figures for the shapes, or why there are none. */
const torchBaseline = (rank: number, width: number, batch: number) =>
  pythonFigures<TorchFigures>("tools/lora_torch_bench.py", [
    "--rank",
    `${rank}`,
    "--width",
    `${width}`,
    "--batch",
    `${batch}`
  ], 180_000)

/** Vectors per second of `step` over `batch` rows, best of five runs of about 0.3 s each. */
const vectorsPerSecond = async (batch: number, step: () => void): Promise<number> => {
  let iterations = 1
  for (;;) {
    const seconds = await bestOf(1, () => {
      for (let i = 0; i < iterations; i++) step()
    })
    if (seconds >= 0.075) {
      iterations = Math.max(1, Math.round((iterations * 0.3) / seconds))
      break
    }
    iterations *= 2
  }
  const seconds = await bestOf(5, () => {
    for (let i = 0; i < iterations; i++) step()
  })
  return (iterations * batch) / seconds
}

const vectorMicroLora = async () => {
  const [rank, width, batch] = [2, 256, 32]
  const lora = makeMicroLora({ width, rank, seed: 1 })
  lora.B.fill(0.01)
  const x = Float32Array.from({ length: batch * width }, (_, i) => Math.sin(i))
  const dy = Float32Array.from({ length: batch * width }, (_, i) => Math.cos(i))
  const y = new Float32Array(batch * width)
  const dx = new Float32Array(batch * width)
  const quantized = quantizeRows(x, batch, width)
  const forward = await vectorsPerSecond(batch, () => forwardMicroLora(lora, x, batch, y))
  const backward = await vectorsPerSecond(batch, () => backwardMicroLora(lora, x, dy, batch, dx))
  const forwardInt8 = await vectorsPerSecond(batch, () => forwardMicroLoraInt8(lora, quantized, batch, y))
  const shapes = `rank ${rank}, width ${width}, batch ${batch}`
  report(`MicroLoRA forward (${shapes})`, "vectors/s", forward, SEED_VECTORS_PER_SECOND, "seed", ">= 100x")
  report(`MicroLoRA backward (${shapes})`, "vectors/s", backward, SEED_VECTORS_PER_SECOND, "seed", ">= 100x")
  report(`MicroLoRA forward, int8 rows (${shapes})`, "vectors/s", forwardInt8, forward, "float32")
  const torch = torchBaseline(rank, width, batch)
  if (typeof torch === "string") {
    console.log(`PyTorch baseline unavailable: ${torch}`)
    return
  }
  const baseline = `PyTorch ${torch.torch} (${blasLabel(torch)}), 1 thread`
  report(`MicroLoRA forward (${shapes})`, "vectors/s", forward, torch.forward, baseline, ">= 0.6x")
  report(`MicroLoRA backward (${shapes})`, "vectors/s", backward, torch.backward, baseline, ">= 0.6x")
}

/** The training executor's matrix kernel on a step's largest shape (c_attn over 8 x 128 tokens): WebAssembly SIMD vs JavaScript. */
const kernel = async () => {
  const [m, q, len] = [1024, 576, 192]
  const x = Float32Array.from({ length: m * len }, (_, i) => Math.sin(i))
  const y = Float32Array.from({ length: q * len }, (_, i) => Math.cos(i))
  const z = new Float32Array(m * q)
  const simd = await bestOf(5, () => simdDotProducts(x, 0, y, 0, z, 0, m, q, len))
  const scalar = await bestOf(3, () => scalarDotProducts(x, 0, y, 0, z, 0, m, q, len))
  const gmac = (seconds: number) => (m * q * len) / seconds / 1e9
  report(
    `training MatMul kernel [${m}x${len}]·[${q}x${len}]ᵀ, SIMD`,
    "GMAC/s",
    gmac(simd),
    gmac(scalar),
    "JavaScript loop"
  )
}

/** The seed's target for training a rank-4 adapter on 100 samples of the reference LM. */
const SEED_TRAINING_SECONDS = 300

interface TorchTraining extends TorchBlas {
  readonly torch: string
  readonly steps: number
  readonly seconds: number
  readonly base_loss: number
  readonly adapted_loss: number
}

/** PyTorch's run of the same training on the inputs in `directory`, or why there is none. */
const torchTraining = (directory: string) =>
  pythonFigures<TorchTraining>("tools/lora_torch_train.py", [directory], 900_000)

/** Rank 4 on 100 windows of 128 tokens of mail, 3 epochs of batch 8, in a worker thread; the adapter it made. */
const training = async (): Promise<LoraWeights> => {
  console.log("training tiny-lm's rank-4 adapter on 100 windows of 128 tokens (3 epochs, batch 8; a few minutes) ...")
  resetPeakRss()
  const result = await domainAdaptation()
  const trainingPeakMb = peakRssMb()
  const seconds = result.trainMs / 1000
  const loopSeconds = result.loopMs / 1000
  const what =
    `LoRA training, rank 4, ${result.windows.train.length} x ${result.windowLength} tokens, ${result.steps} steps`
  console.log(
    `  held-out loss ${result.baseLoss.toFixed(4)} -> ${
      result.adaptedLoss.toFixed(4)
    } nats/token on ${result.heldOutWindows} windows (a time ratio under 1 is faster)`
  )
  report(what, "s", seconds, SEED_TRAINING_SECONDS, "seed target", "< 1x")
  const directory = mkdtempSync(path.join(tmpdir(), "lora-torch-"))
  try {
    writeTorchInputs(directory, referenceModel("tiny-lm").model, result.windows, result.config, result.baseLoss)
    const torch = torchTraining(directory)
    if (typeof torch === "string") console.log(`PyTorch training baseline unavailable: ${torch}`)
    else {
      console.log(
        `  PyTorch: ${torch.steps} steps, held-out loss ${torch.base_loss.toFixed(4)} -> ${
          torch.adapted_loss.toFixed(4)
        }`
      )
      // Both sides time their training loops: the script starts its clock after building the model and
      // the optimizer, as trainAdapter does after the threads have started and read the model.
      const threads = Math.min(2, availableParallelism())
      console.log(
        `  ours: ${loopSeconds.toFixed(2)} s in the training loop on ${threads} threads, ${
          seconds.toFixed(2)
        } s with starting them and reading the model`
      )
      report(
        `${what}, training loop, ${threads} threads`,
        "s",
        loopSeconds,
        torch.seconds,
        `PyTorch ${torch.torch} (${blasLabel(torch)}), 1 thread`,
        "<= 2x"
      )
      // This process's peak while it trained (the training threads included), against the PyTorch script's own.
      report("  peak RSS, LoRA training", "MB", trainingPeakMb, torch.peakRssMb, "PyTorch")
    }
  } finally {
    rmSync(directory, { recursive: true, force: true })
  }
  return result.weights
}

const largestDifference = (a: Float32Array, b: Float32Array) =>
  a.reduce((worst, value, index) => Math.max(worst, Math.abs(value - b[index]!)), 0)

/** ONNX Runtime, one thread, one 128-token prompt: the base model, adapter branches fed as inputs, the adapter merged. */
const inferenceLatency = async (weights: LoraWeights) => {
  const { bytes, model, tokenizer } = referenceModel("tiny-lm")
  const text =
    "Hi all, the mailing list server will be down for maintenance tonight; please resend anything that bounces. "
      .repeat(8)
  const feeds = textFeeds(model, tokenizer, text, 128)
  const injected = injectAdapterInputs(model, Object.keys(weights.modules), weights.rank)
  const branchFeeds = { ...feeds, ...feedsFor(adapterLayout(injected), weights) }
  const base = await createSession(bytes)
  const branch = await createSession(writeModel(injected))
  const merged = await createSession(writeModel(mergeAdapter(model, weights)))
  const logits = async (session: typeof base, input: typeof feeds) =>
    (await runSession(session, input, ["logits"]))["logits"]!.data
  const difference = largestDifference(await logits(branch, branchFeeds), await logits(merged, feeds))
  const tokens = (feeds["input_ids"]!.dims as ReadonlyArray<number>)[1]
  console.log(
    `  adapter branch and merged adapter agree to ${
      difference.toExponential(2)
    } (largest logit difference), ${tokens}-token prompt`
  )
  const median = async (session: typeof base, input: typeof feeds) => {
    let best = Number.POSITIVE_INFINITY
    for (let round = 0; round < 3; round++) best = Math.min(best, await latencyMs(session, input, 15))
    return best
  }
  const baseMs = await median(base, feeds)
  const branchMs = await median(branch, branchFeeds)
  const mergedMs = await median(merged, feeds)
  report(
    `ORT latency, adapter branch (rank ${weights.rank}, ${Object.keys(weights.modules).length} modules)`,
    "ms",
    branchMs,
    baseMs,
    "base model"
  )
  report("ORT latency, merged adapter", "ms", mergedMs, baseMs, "base model")
  await Promise.all([base.release(), branch.release(), merged.release()])
}

export const run = async () => {
  await vectorMicroLora()
  await kernel()
  const weights = await training()
  await inferenceLatency(weights)
}
