/**
 * The training executor's operators on quantized base weights: com.microsoft MatMulNBits (a 4-bit
 * weight in blocks, dequantized once and then multiplied as MatMul does) and DequantizeLinear (INT8
 * weight-only storage). The weights are frozen: gradients flow to the activations only, which is all
 * QLoRA needs (a full-precision adapter trained through a 4-bit base).
 */
import type { OnnxNode } from "../../onnx/OnnxModel.js"
import { blocksPerColumn, dequantizeInt4 } from "../../quantize/Int4.js"
import type { Operator } from "./Operator.js"
import { asFloat, fail, intAttribute, required } from "./Operator.js"
import type { FloatTensor, IntTensor, Tensor } from "./Tensor.js"
import { describeDims, dotProducts, floats, floatTensor, sizeOf, transposeMatrix } from "./Tensor.js"

/** A MatMulNBits weight as the matmul reads it: B [K, N] for the backward pass, Bᵀ [N, K] for the forward. */
interface DequantizedWeight {
  readonly scales: Float32Array
  readonly zeroPoints: Float64Array | undefined
  readonly weight: Float32Array
  readonly transposed: Float32Array
}

/**
 * Dequantized weights by their packed array: tensors are never written after they are made, so a base
 * model's 4-bit weight is dequantized on its first run and serves every later step.
 */
const dequantizedCache = new WeakMap<Float64Array, DequantizedWeight>()

const asInteger = (node: OnnxNode, tensor: Tensor, what: string): IntTensor =>
  tensor.kind === "int" ? tensor : fail(node, `${what} must be integers (uint8), got ${tensor.kind}`)

const bytesOf = (node: OnnxNode, values: Float64Array, what: string): Uint8Array => {
  const bytes = new Uint8Array(values.length)
  for (let i = 0; i < values.length; i++) {
    const value = values[i]!
    if (!(value >= 0 && value <= 255 && Number.isInteger(value))) fail(node, `${what} holds ${value}, not a byte`)
    bytes[i] = value
  }
  return bytes
}

/** The node's 4-bit weight, dequantized as ONNX Runtime's MatMulNBits does (zero point 8 when none is given). */
const dequantizedWeight = (node: OnnxNode, inputs: ReadonlyArray<Tensor | undefined>): DequantizedWeight => {
  const K = intAttribute(node, "K")
  const N = intAttribute(node, "N")
  const bits = intAttribute(node, "bits", 4)
  const blockSize = intAttribute(node, "block_size")
  if (bits !== 4) fail(node, `only 4-bit weights are supported (bits is ${bits})`)
  if (!(blockSize >= 16 && (blockSize & (blockSize - 1)) === 0)) {
    fail(node, `block_size must be a power of 2, 16 or more (not ${blockSize})`)
  }
  if (inputs[4] !== undefined) fail(node, "a g_idx input (act-order) is not supported")
  const packed = asInteger(node, required(node, inputs, 1), "the packed weight")
  const scales = asFloat(node, required(node, inputs, 2))
  const zeroPoints = inputs[3] === undefined ? undefined : asInteger(node, inputs[3], "the zero points")
  const cached = dequantizedCache.get(packed.data)
  if (cached !== undefined && cached.scales === scales.data && cached.zeroPoints === zeroPoints?.data) return cached
  const blocks = blocksPerColumn(K, blockSize)
  const expect = (what: string, tensor: Tensor, size: number) => {
    if (tensor.data.length !== size) {
      fail(
        node,
        `${what} has ${tensor.data.length} values ${describeDims(tensor.dims)}, K ${K} and N ${N} need ${size}`
      )
    }
  }
  expect("the packed weight", packed, N * blocks * (blockSize / 2))
  expect("scales", scales, N * blocks)
  const zeroBytes = N * Math.ceil(blocks / 2)
  if (zeroPoints !== undefined) expect("zero points", zeroPoints, zeroBytes)
  const weight = dequantizeInt4({
    K,
    N,
    blockSize,
    packed: bytesOf(node, packed.data, "the packed weight"),
    scales: scales.data,
    zeroPoints: zeroPoints === undefined
      ? new Uint8Array(zeroBytes).fill(0x88)
      : bytesOf(node, zeroPoints.data, "zero points")
  })
  const dequantized = {
    scales: scales.data,
    zeroPoints: zeroPoints?.data,
    weight,
    transposed: transposeMatrix(weight, 0, K, N, true)
  }
  dequantizedCache.set(packed.data, dequantized)
  return dequantized
}

/** Default-domain operators on quantized storage. */
export const quantizedOperators: Record<string, Operator> = {
  DequantizeLinear: {
    forward: (inputs, { node }) => {
      const quantized = asInteger(node, required(node, inputs, 0), "the quantized input")
      const scale = asFloat(node, required(node, inputs, 1))
      const zeroPoint = inputs[2] === undefined ? undefined : asInteger(node, inputs[2], "the zero point")
      if (intAttribute(node, "block_size", 0) !== 0) fail(node, "blocked quantization (block_size) is not supported")
      const rank = quantized.dims.length
      const perAxis = scale.data.length > 1
      const axis = perAxis ? intAttribute(node, "axis", 1) : 0
      const normalized = axis < 0 ? axis + rank : axis
      const channels = perAxis ? quantized.dims[normalized] ?? 0 : 1
      if (perAxis && (normalized < 0 || normalized >= rank || scale.data.length !== channels)) {
        fail(node, `scale ${describeDims(scale.dims)} does not match axis ${axis} of ${describeDims(quantized.dims)}`)
      }
      if (zeroPoint !== undefined && zeroPoint.data.length !== scale.data.length) {
        fail(node, `zero point ${describeDims(zeroPoint.dims)} and scale ${describeDims(scale.dims)} differ in size`)
      }
      const inner = perAxis ? sizeOf(quantized.dims.slice(normalized + 1)) : 1
      const out = floatTensor(quantized.dims)
      const x = quantized.data, y = out.data
      for (let i = 0; i < x.length; i++) {
        const channel = perAxis ? Math.floor(i / inner) % channels : 0
        y[i] = (x[i]! - (zeroPoint?.data[channel] ?? 0)) * scale.data[channel]!
      }
      return [out]
    }
  }
}

/** ONNX Runtime's com.microsoft operators: the 4-bit MatMul our INT4, GPTQ and AWQ quantizers write. */
export const microsoftOperators: Record<string, Operator> = {
  MatMulNBits: {
    forward: (inputs, { node }) => {
      const a = asFloat(node, required(node, inputs, 0))
      const { transposed } = dequantizedWeight(node, inputs)
      const K = intAttribute(node, "K")
      const N = intAttribute(node, "N")
      if (a.dims.length < 2 || a.dims[a.dims.length - 1] !== K) {
        fail(node, `input ${describeDims(a.dims)} does not end in K ${K}`)
      }
      const rows = a.data.length / K
      const out = floatTensor([...a.dims.slice(0, -1), N])
      dotProducts(a.data, 0, transposed, 0, out.data, 0, rows, N, K, true)
      const bias = inputs[5] === undefined ? undefined : asFloat(node, inputs[5])
      if (bias !== undefined) {
        if (bias.data.length !== N) fail(node, `bias ${describeDims(bias.dims)} is not [${N}]`)
        for (let row = 0; row < rows; row++) for (let n = 0; n < N; n++) out.data[row * N + n]! += bias.data[n]!
      }
      return [out]
    },
    backward: (inputs, _outputs, [grad], wants, { node }) => {
      if (wants.slice(1).some(Boolean)) fail(node, "the 4-bit weight, its scales and bias are frozen: no gradients")
      if (!wants[0]) return [undefined]
      const a = inputs[0] as FloatTensor
      const { weight } = dequantizedWeight(node, inputs)
      const K = intAttribute(node, "K")
      const N = intAttribute(node, "N")
      // dA = dC · Bᵀ: rows of dC against rows of B [K, N].
      const da = floats(a.data.length)
      dotProducts(grad!, 0, weight, 0, da, 0, a.data.length / K, K, N)
      return [da]
    }
  }
}
