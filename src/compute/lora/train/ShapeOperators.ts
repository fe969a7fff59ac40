/**
 * The shape operators of the training executor: Identity, Reshape, Unsqueeze, Transpose, Concat, Split,
 * Gather, Shape and Range, which move values without arithmetic; their gradients move them back.
 */
import type { OnnxNode } from "../../onnx/OnnxModel.js"
import type { Backward, Operator } from "./Operator.js"
import { fail, intAttribute, intsAttribute, intValues, normalizeAxis, required } from "./Operator.js"
import type { Tensor } from "./Tensor.js"
import { describeDims, floats, floatTensor, intTensor, like, sizeOf, stridesOf, unfilledFloats } from "./Tensor.js"

const reshaped = (tensor: Tensor, dims: ReadonlyArray<number>): Tensor => ({ ...tensor, dims }) as Tensor

const shapeBackward: Backward = (_inputs, _outputs, [grad], wants) => [wants[0] ? grad : undefined]

const reshapeTarget = (node: OnnxNode, input: Tensor, shape: ReadonlyArray<number>): Array<number> => {
  const allowZero = intAttribute(node, "allowzero", 0) === 1
  const dims = shape.map((
    dim,
    axis
  ) => (dim === 0 && !allowZero
    ? (input.dims[axis] ?? fail(node, `shape copies axis ${axis}, which the input lacks`))
    : dim)
  )
  const inferred = dims.indexOf(-1)
  const known = dims.reduce((product, dim) => (dim === -1 ? product : product * dim), 1)
  const total = sizeOf(input.dims)
  if (inferred >= 0) {
    if (known === 0 || total % known !== 0) {
      fail(node, `cannot reshape ${describeDims(input.dims)} to ${describeDims(shape)}`)
    }
    dims[inferred] = total / known
  }
  if (sizeOf(dims) !== total) fail(node, `cannot reshape ${describeDims(input.dims)} to ${describeDims(shape)}`)
  return dims
}

const transposeOf = (tensor: Tensor, perm: ReadonlyArray<number>): Tensor => {
  const dims = perm.map((axis) => tensor.dims[axis]!)
  const out = like(tensor, dims)
  const inStrides = stridesOf(tensor.dims)
  const rank = dims.length
  const strides = perm.map((axis) => inStrides[axis]!)
  const counter = new Array<number>(rank).fill(0)
  const source = tensor.data, target = out.data
  let offset = 0
  // The innermost output axis runs with a fixed source stride: copy it as one strided run.
  const innerDim = dims[rank - 1] ?? 1
  const innerStride = strides[rank - 1] ?? 1
  const rows = target.length / Math.max(innerDim, 1)
  let index = 0
  for (let row = 0; row < rows; row++) {
    for (let j = 0; j < innerDim; j++) target[index++] = source[offset + j * innerStride]!
    for (let axis = rank - 2; axis >= 0; axis--) {
      counter[axis]!++
      offset += strides[axis]!
      if (counter[axis]! < dims[axis]!) break
      offset -= strides[axis]! * dims[axis]!
      counter[axis] = 0
    }
  }
  return out
}

const permutationOf = (node: OnnxNode, rank: number): Array<number> =>
  intsAttribute(node, "perm") ?? Array.from({ length: rank }, (_, axis) => rank - 1 - axis)

const inversePermutation = (perm: ReadonlyArray<number>): Array<number> => {
  const inverse = new Array<number>(perm.length)
  perm.forEach((axis, index) => (inverse[axis] = index))
  return inverse
}

/** Splits along `axis` into contiguous blocks: (outer, axis size, inner) strides. */
const axisLayout = (dims: ReadonlyArray<number>, axis: number) => ({
  outer: sizeOf(dims.slice(0, axis)),
  inner: sizeOf(dims.slice(axis + 1))
})

const concatOf = (tensors: ReadonlyArray<Tensor>, axis: number, template: Tensor): Tensor => {
  const dims = [...template.dims]
  dims[axis] = tensors.reduce((total, tensor) => total + tensor.dims[axis]!, 0)
  const out = like(template, dims)
  const { outer, inner } = axisLayout(dims, axis)
  const rowLength = dims[axis]! * inner
  let start = 0
  for (const tensor of tensors) {
    const chunk = tensor.dims[axis]! * inner
    for (let o = 0; o < outer; o++) {
      const source = tensor.data.subarray(o * chunk, (o + 1) * chunk)
      ;(out.data as Float32Array).set(source as Float32Array, o * rowLength + start)
    }
    start += chunk
  }
  return out
}

/** The slices of `grad` (laid out as `dims`) along `axis`, of the given sizes. */
const splitGrad = (
  grad: Float32Array,
  dims: ReadonlyArray<number>,
  axis: number,
  sizes: ReadonlyArray<number>
): Array<Float32Array> => {
  const { outer, inner } = axisLayout(dims, axis)
  const rowLength = dims[axis]! * inner
  let start = 0
  return sizes.map((size) => {
    const chunk = size * inner
    const part = unfilledFloats(outer * chunk)
    for (let o = 0; o < outer; o++) {
      part.set(grad.subarray(o * rowLength + start, o * rowLength + start + chunk), o * chunk)
    }
    start += chunk
    return part
  })
}

const splitSizes = (
  node: OnnxNode,
  inputs: ReadonlyArray<Tensor | undefined>,
  input: Tensor,
  axis: number
): Array<number> => {
  const given = inputs[1]
  if (given !== undefined) return intValues(given)
  const attribute = intsAttribute(node, "split")
  if (attribute !== undefined) return attribute
  const parts = node.outputs.length
  const length = input.dims[axis]!
  const size = Math.ceil(length / parts)
  return Array.from({ length: parts }, (_, index) => Math.max(0, Math.min(size, length - index * size)))
}

export const shapeOperators: Record<string, Operator> = {
  Identity: { forward: (inputs, { node }) => [required(node, inputs, 0)], backward: shapeBackward },

  Transpose: {
    forward: (inputs, { node }) => {
      const input = required(node, inputs, 0)
      return [transposeOf(input, permutationOf(node, input.dims.length))]
    },
    backward: (_inputs, outputs, [grad], wants, { node }) => {
      if (!wants[0]) return [undefined]
      const out = outputs[0]!
      const inverse = inversePermutation(permutationOf(node, out.dims.length))
      return [transposeOf(floatTensor(out.dims, grad!), inverse).data as Float32Array]
    }
  },

  Reshape: {
    forward: (inputs, { node }) => {
      const input = required(node, inputs, 0)
      return [reshaped(input, reshapeTarget(node, input, intValues(required(node, inputs, 1))))]
    },
    backward: shapeBackward
  },

  Unsqueeze: {
    forward: (inputs, { node }) => {
      const input = required(node, inputs, 0)
      const axes = inputs[1] === undefined
        ? (intsAttribute(node, "axes") ?? fail(node, "needs axes"))
        : intValues(inputs[1])
      const rank = input.dims.length + axes.length
      const sorted = axes.map((axis) => normalizeAxis(node, axis, rank)).sort((x, y) => x - y)
      const dims = [...input.dims]
      for (const axis of sorted) dims.splice(axis, 0, 1)
      return [reshaped(input, dims)]
    },
    backward: shapeBackward
  },

  Concat: {
    forward: (inputs, { node }) => {
      const tensors = inputs.filter((tensor): tensor is Tensor => tensor !== undefined)
      if (tensors.length === 0) fail(node, "has no inputs")
      const template = tensors.find((tensor) => sizeOf(tensor.dims) > 0) ?? tensors[0]!
      const axis = normalizeAxis(node, intAttribute(node, "axis"), template.dims.length)
      const parts = tensors.filter((tensor) => tensor.dims.length === template.dims.length)
      for (const part of parts) {
        if (part.kind !== template.kind) fail(node, `mixes ${part.kind} and ${template.kind} inputs`)
        if (part.dims.some((dim, index) => index !== axis && dim !== template.dims[index])) {
          fail(node, `shapes ${describeDims(part.dims)} and ${describeDims(template.dims)} differ off axis ${axis}`)
        }
      }
      return [concatOf(parts, axis, template)]
    },
    backward: (inputs, outputs, [grad], wants, { node }) => {
      const out = outputs[0]!
      const axis = normalizeAxis(node, intAttribute(node, "axis"), out.dims.length)
      const sizes = inputs.map((
        tensor
      ) => (tensor === undefined || tensor.dims.length !== out.dims.length ? 0 : tensor.dims[axis]!))
      const parts = splitGrad(grad!, out.dims, axis, sizes)
      return parts.map((part, index) => (wants[index] ? part : undefined))
    }
  },

  Split: {
    forward: (inputs, { node }) => {
      const input = required(node, inputs, 0)
      const axis = normalizeAxis(node, intAttribute(node, "axis", 0), input.dims.length)
      const sizes = splitSizes(node, inputs, input, axis)
      if (sizes.reduce((total, size) => total + size, 0) !== input.dims[axis]) {
        fail(node, `split sizes ${sizes.join(", ")} do not add up to ${input.dims[axis]}`)
      }
      const { outer, inner } = axisLayout(input.dims, axis)
      const rowLength = input.dims[axis]! * inner
      let start = 0
      return sizes.map((size) => {
        const dims = [...input.dims]
        dims[axis] = size
        const out = like(input, dims)
        const chunk = size * inner
        for (let o = 0; o < outer; o++) {
          ;(out.data as Float32Array).set(
            input.data.subarray(o * rowLength + start, o * rowLength + start + chunk) as Float32Array,
            o * chunk
          )
        }
        start += chunk
        return out
      })
    },
    backward: (inputs, outputs, grads, wants, { node }) => {
      if (!wants[0]) return [undefined]
      const input = inputs[0]!
      const axis = normalizeAxis(node, intAttribute(node, "axis", 0), input.dims.length)
      const filled = outputs.map((output, index) =>
        floatTensor(output.dims, grads[index] ?? floats(sizeOf(output.dims)))
      )
      return [concatOf(filled, axis, floatTensor(input.dims)).data as Float32Array]
    }
  },

  Gather: {
    forward: (inputs, { node }) => {
      const data = required(node, inputs, 0)
      const indices = required(node, inputs, 1)
      const axis = normalizeAxis(node, intAttribute(node, "axis", 0), data.dims.length)
      const axisSize = data.dims[axis]!
      const { outer, inner } = axisLayout(data.dims, axis)
      const dims = [...data.dims.slice(0, axis), ...indices.dims, ...data.dims.slice(axis + 1)]
      const out = like(data, dims)
      const count = indices.data.length
      for (let o = 0; o < outer; o++) {
        for (let index = 0; index < count; index++) {
          let at = indices.data[index]!
          if (at < 0) at += axisSize
          if (at < 0 || at >= axisSize) {
            fail(node, `index ${indices.data[index]} is out of range for axis size ${axisSize}`)
          }
          const from = (o * axisSize + at) * inner
          ;(out.data as Float32Array).set(
            data.data.subarray(from, from + inner) as Float32Array,
            (o * count + index) * inner
          )
        }
      }
      return [out]
    },
    backward: (inputs, _outputs, [grad], wants, { node }) => {
      if (!wants[0]) return [undefined]
      const data = inputs[0]!
      const indices = inputs[1]!
      const axis = normalizeAxis(node, intAttribute(node, "axis", 0), data.dims.length)
      const axisSize = data.dims[axis]!
      const { outer, inner } = axisLayout(data.dims, axis)
      const dx = floats(data.data.length)
      const count = indices.data.length
      for (let o = 0; o < outer; o++) {
        for (let index = 0; index < count; index++) {
          let at = indices.data[index]!
          if (at < 0) at += axisSize
          const to = (o * axisSize + at) * inner
          const from = (o * count + index) * inner
          for (let j = 0; j < inner; j++) dx[to + j]! += grad![from + j]!
        }
      }
      return [dx, undefined]
    }
  },

  Shape: {
    forward: (inputs, { node }) => {
      const dims = required(node, inputs, 0).dims
      const rank = dims.length
      const clamp = (value: number) => Math.min(rank, Math.max(0, value < 0 ? value + rank : value))
      const start = clamp(intAttribute(node, "start", 0))
      const end = clamp(intAttribute(node, "end", rank))
      const values = dims.slice(start, end)
      return [intTensor([values.length], Float64Array.from(values))]
    }
  },

  Range: {
    forward: (inputs, { node }) => {
      const start = required(node, inputs, 0), limit = required(node, inputs, 1), delta = required(node, inputs, 2)
      const [from, to, step] = [start.data[0]!, limit.data[0]!, delta.data[0]!]
      if (step === 0) fail(node, "delta is 0")
      const count = Math.max(0, Math.ceil((to - from) / step))
      const out = start.kind === "float" ? floatTensor([count]) : intTensor([count])
      for (let i = 0; i < count; i++) out.data[i] = from + i * step
      return [out]
    }
  }
}
