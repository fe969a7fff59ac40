/**
 * rUv as the network counts it: amounts in the smallest unit as bigint, read from outside only as
 * plain decimal strings of bounded length, and the ids of the accounts and operations that move them.
 */
import { ParseResult, Schema } from "effect"

export const AccountId = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$/, {
    message: () => "an account id is 1-128 letters, digits or _ . : @ -, starting with a letter or digit"
  }),
  Schema.brand("AccountId")
)
export type AccountId = typeof AccountId.Type

/** The longest amount accepted from outside: BigInt() of a 4,000,000-digit string takes the node with it. */
export const MAX_AMOUNT_DIGITS = 30
const plainDecimal = /^[0-9]{1,30}$/

/**
 * An amount of rUv in the smallest unit, as a plain decimal string of at most 30 digits ("0x10", "1e3",
 * " 16" and "-1" are refused, where Schema.BigInt reads them). Encodes as the decimal string, unchecked.
 */
export const Credits = Schema.transformOrFail(Schema.String, Schema.BigIntFromSelf, {
  strict: true,
  decode: (text, _options, ast) =>
    plainDecimal.test(text)
      ? ParseResult.succeed(BigInt(text))
      : ParseResult.fail(
        new ParseResult.Type(
          ast,
          text,
          `an amount is a whole number of rUv in at most ${MAX_AMOUNT_DIGITS} decimal digits`
        )
      ),
  encode: (amount) => ParseResult.succeed(amount.toString())
}).annotations({ identifier: "Credits" })
export const PositiveCredits = Credits.pipe(
  Schema.positiveBigInt({ message: () => "an amount must be a positive whole number of rUv" })
)

/**
 * An amount the node itself recorded or computed (an event, a balance, a refused amount): decimal only,
 * signed, up to 4096 digits, so a sum past 30 digits or a refused negative amount always reads back.
 */
export const RecordedCredits = Schema.transformOrFail(Schema.String, Schema.BigIntFromSelf, {
  strict: true,
  decode: (text, _options, ast) =>
    /^-?[0-9]{1,4096}$/.test(text)
      ? ParseResult.succeed(BigInt(text))
      : ParseResult.fail(new ParseResult.Type(ast, text, "a recorded amount is a decimal whole number")),
  encode: (amount) => ParseResult.succeed(amount.toString())
}).annotations({ identifier: "RecordedCredits" })

export const OperationId = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}$/),
  Schema.brand("OperationId")
)
export type OperationId = typeof OperationId.Type
