/**
 * The table of the training executor's ONNX operators by domain and op type: what the reference GPT-2
 * and BERT exports use, plus Dropout and a few elementwise neighbours, and the quantized storage of
 * their INT8 / INT4 versions (DequantizeLinear, com.microsoft MatMulNBits), and the nodes GraphFusion.ts
 * writes (the "edge-net" domain). Anything else is refused by name at compile time.
 */
import { elementwiseOperators } from "./ElementwiseOperators.js"
import { fusedOperators } from "./FusedOperators.js"
import { FUSED_DOMAIN } from "./GraphFusion.js"
import type { Operator } from "./Operator.js"
import { microsoftOperators, quantizedOperators } from "./QuantizedOperators.js"
import { rowOperators } from "./RowOperators.js"
import { shapeOperators } from "./ShapeOperators.js"

const byDomain: Record<string, Record<string, Operator>> = {
  "": { ...shapeOperators, ...elementwiseOperators, ...rowOperators, ...quantizedOperators },
  "com.microsoft": microsoftOperators,
  [FUSED_DOMAIN]: fusedOperators
}

/** The operator for a node's op type in its domain ("" and "ai.onnx" are the default domain). */
export const operatorFor = (opType: string, domain = ""): Operator | undefined => {
  const operators = byDomain[domain === "ai.onnx" ? "" : domain]
  return operators !== undefined && Object.hasOwn(operators, opType) ? operators[opType] : undefined
}

/** Every supported op type, prefixed by its domain outside the default one. */
export const supportedOperators = (): Array<string> =>
  Object.entries(byDomain).flatMap(([domain, operators]) =>
    Object.keys(operators).map((opType) => (domain === "" ? opType : `${domain}.${opType}`))
  ).sort()
