/**
 * Automatic per-layer precision: given how much each layer's quantization hurts (its sensitivity at
 * each bit width, measured one layer at a time) and how big it is, choose bits per layer so the model
 * fits a size budget with the least total damage.
 */

export type Bits = 4 | 8 | 16 | 32

export interface LayerSensitivity {
  readonly layer: string
  /** Weights in the layer. */
  readonly parameters: number
  /**
   * Damage when only this layer is quantized to a width (e.g. 1 - output cosine, or perplexity increase);
   * 32 bits is the reference and costs nothing. Widths absent here are not available for the layer.
   */
  readonly damage: Partial<Record<Bits, number>>
  /** Bytes the layer takes in the written file at each width, when measured; else `layerBytes` estimates them. */
  readonly bytes?: Partial<Record<Bits, number>>
}

export interface PrecisionAssignment {
  readonly bits: Readonly<Record<string, Bits>>
  /** Estimated bytes of the quantized weights, scales included. */
  readonly bytes: number
  /** Sum of the chosen widths' damage (the additive estimate the choice minimizes). */
  readonly damage: number
  readonly fits: boolean
}

/** Bytes a layer takes at a width: INT4 and INT8 carry one FP32 scale per 32-value block / per channel row. */
export const layerBytes = (parameters: number, bits: Bits): number => {
  switch (bits) {
    case 4:
      return Math.ceil(parameters / 2) + Math.ceil(parameters / 32) * 4
    case 8:
      return parameters + Math.ceil(parameters / 256) * 4
    case 16:
      return parameters * 2
    case 32:
      return parameters * 4
  }
}

const WIDTHS: ReadonlyArray<Bits> = [4, 8, 16, 32]

const optionsOf = (layer: LayerSensitivity) =>
  WIDTHS.filter((bits) => bits === 32 || layer.damage[bits] !== undefined).map((bits) => ({
    bits,
    bytes: layer.bytes?.[bits] ?? layerBytes(layer.parameters, bits),
    damage: bits === 32 ? 0 : layer.damage[bits]!
  }))

/** Damage an upgrade from `from` to `to` removes per extra byte. */
const removedPerByte = (from: { bytes: number; damage: number }, to: { bytes: number; damage: number }) =>
  (from.damage - to.damage) / (to.bytes - from.bytes)

/**
 * Starts every layer at its cheapest width, then repeatedly buys the upgrade that removes the most
 * damage per extra byte while the budget allows (a greedy over each layer's convex hull, which is
 * how mixed-precision allocators such as HAQ's baseline and llama.cpp's importance-based choices
 * work). Deterministic: ties go to the earlier layer.
 */
export const assignPrecision = (layers: ReadonlyArray<LayerSensitivity>, budgetBytes: number): PrecisionAssignment => {
  const choices = layers.map((layer) => {
    const options = optionsOf(layer).sort((a, b) => a.bytes - b.bytes)
    // Keep only options on the lower convex hull of (bytes, damage): the rest are never worth buying.
    const hull: typeof options = []
    for (const option of options) {
      // A wider option that does no better than a cheaper one is never worth its bytes.
      if (hull.length > 0 && hull[hull.length - 1]!.damage <= option.damage) continue
      while (
        hull.length >= 2 &&
        removedPerByte(hull[hull.length - 2]!, hull[hull.length - 1]!) <= removedPerByte(hull[hull.length - 1]!, option)
      ) {
        hull.pop()
      }
      hull.push(option)
    }
    return { layer: layer.layer, hull, index: 0 }
  })
  let bytes = choices.reduce((sum, choice) => sum + choice.hull[0]!.bytes, 0)
  while (true) {
    let best: (typeof choices)[number] | undefined
    let bestGain = 0
    for (const choice of choices) {
      const current = choice.hull[choice.index]!
      const next = choice.hull[choice.index + 1]
      if (next === undefined || bytes - current.bytes + next.bytes > budgetBytes) continue
      const gain = removedPerByte(current, next)
      if (gain > bestGain) {
        best = choice
        bestGain = gain
      }
    }
    if (best === undefined) break
    bytes += best.hull[best.index + 1]!.bytes - best.hull[best.index]!.bytes
    best.index++
  }
  const bits: Record<string, Bits> = {}
  let damage = 0
  for (const choice of choices) {
    const chosen = choice.hull[choice.index]!
    bits[choice.layer] = chosen.bits
    damage += chosen.damage
  }
  return { bits, bytes, damage, fits: bytes <= budgetBytes }
}
