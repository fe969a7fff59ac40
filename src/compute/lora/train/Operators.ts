/**
 * The table of the training executor's ONNX operators by op type: what the reference GPT-2 and BERT exports
 * use, plus Dropout and a few elementwise neighbours. Anything else is refused by name at compile time.
 */
import { elementwiseOperators } from "./ElementwiseOperators.js"
import type { Operator } from "./Operator.js"
import { rowOperators } from "./RowOperators.js"
import { shapeOperators } from "./ShapeOperators.js"

const operators: Record<string, Operator> = { ...shapeOperators, ...elementwiseOperators, ...rowOperators }

export const operatorFor = (
  opType: string
): Operator | undefined => (Object.hasOwn(operators, opType) ? operators[opType] : undefined)

export const supportedOperators = (): Array<string> => Object.keys(operators).sort()
