/**
 * The reputation bonding curve: a price discounted by the buyer's reputation, linearly up to
 * `maxDiscountPpm` for a perfect score, in integer ppm arithmetic rounded in the system's favour.
 */
import { Context, Effect, Layer, Schema } from "effect"

export const PPM = 1_000_000n

export const ReputationQuote = Schema.Struct({
  basePrice: Schema.BigInt,
  /** The buyer's reputation as read, clamped to 0..1_000_000. */
  reputationPpm: Schema.BigInt,
  maxDiscountPpm: Schema.BigInt,
  discountPpm: Schema.BigInt,
  price: Schema.BigInt
})
export type ReputationQuote = typeof ReputationQuote.Type

const clampPpm = (value: bigint) => (value < 0n ? 0n : value > PPM ? PPM : value)

/**
 * price = basePrice * (1e6 - maxDiscountPpm * reputationPpm / 1e6) / 1e6. The discount is rounded down
 * and the price up, so integer rounding never gives away more than the formula does.
 */
export const ReputationBondingCurve = {
  discountPpm: (reputationPpm: bigint, maxDiscountPpm: bigint): bigint =>
    (clampPpm(maxDiscountPpm) * clampPpm(reputationPpm)) / PPM,

  quote: (basePrice: bigint, reputationPpm: bigint, maxDiscountPpm: bigint): ReputationQuote => {
    if (basePrice < 0n) throw new RangeError(`a price cannot be negative, got ${basePrice}`)
    const discountPpm = ReputationBondingCurve.discountPpm(reputationPpm, maxDiscountPpm)
    const price = (basePrice * (PPM - discountPpm) + PPM - 1n) / PPM
    return {
      basePrice,
      reputationPpm: clampPpm(reputationPpm),
      maxDiscountPpm: clampPpm(maxDiscountPpm),
      discountPpm,
      price
    }
  }
} as const

/** Where the market reads a node's reputation (ppm); the economy's Reputation service plugs in here. */
export interface ReputationSource {
  readonly reputationOf: (node: string) => Effect.Effect<bigint>
}

export class MarketReputation extends Context.Tag("edge-net/MarketReputation")<MarketReputation, ReputationSource>() {
  /** Everyone at reputation 0: no discount. What the market uses when no source is provided. */
  static readonly none = Layer.succeed(MarketReputation, { reputationOf: () => Effect.succeed(0n) })
}
