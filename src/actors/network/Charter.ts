/**
 * The network's charter, written once at genesis: its id (every signed command names it), the
 * operator keys, k of n, whose signatures mint rUv, issue compute, seed liquidity and slash, and the
 * node that sequences the economy for everyone. A charter that names no sequencer (every charter
 * founded before sequencers existed) leaves each node sequencing its own economy.
 */
import { Effect, Schema } from "effect"
import { NetworkId, PublicKeyHex } from "../../domain/SignedCommand.js"
import type { EventSourced } from "../../events/Decider.js"

export const CharterTerms = Schema.Struct({
  network: NetworkId,
  operators: Schema.Array(PublicKeyHex).pipe(Schema.minItems(1), Schema.maxItems(16)),
  /** How many distinct operator keys must sign an operator command. */
  threshold: Schema.Int.pipe(Schema.positive()),
  /** The node key of the network's economy sequencer: other nodes forward economy commands to it. */
  sequencer: Schema.optional(PublicKeyHex)
})
export type CharterTerms = typeof CharterTerms.Type

export const NetworkFounded = Schema.TaggedStruct("NetworkFounded", CharterTerms.fields)
export const CharterEvent = Schema.Union(NetworkFounded)
export type CharterEvent = typeof CharterEvent.Type

export const CharterState = Schema.Struct({ terms: Schema.NullOr(CharterTerms) })
export type CharterState = typeof CharterState.Type

export type CharterCommand = { readonly _tag: "Found"; readonly terms: CharterTerms }

export class CharterMismatch extends Schema.TaggedError<CharterMismatch>()("CharterMismatch", {
  recorded: CharterTerms,
  requested: CharterTerms
}) {
  override get message() {
    const describe = (terms: CharterTerms) =>
      `network ${terms.network}, ${terms.threshold} of [${terms.operators.join(", ")}]${
        terms.sequencer === undefined ? "" : `, sequencer ${terms.sequencer}`
      }`
    return `this journal was founded as ${describe(this.recorded)}; the settings ask for ${
      describe(this.requested)
    } (a charter never changes)`
  }
}

export class InvalidCharter extends Schema.TaggedError<InvalidCharter>()("InvalidCharter", { reason: Schema.String }) {
  override get message() {
    return `invalid network charter: ${this.reason}`
  }
}

const sameTerms = (left: CharterTerms, right: CharterTerms) =>
  left.network === right.network && left.threshold === right.threshold && left.sequencer === right.sequencer &&
  left.operators.length === right.operators.length && left.operators.every((key, index) =>
    right.operators[index] === key
  )

const decide = (
  command: CharterCommand,
  state: CharterState
): Effect.Effect<ReadonlyArray<CharterEvent>, CharterMismatch | InvalidCharter> => {
  const { terms } = command
  if (new Set(terms.operators).size !== terms.operators.length) {
    return Effect.fail(new InvalidCharter({ reason: "an operator key is named twice" }))
  }
  if (terms.threshold > terms.operators.length) {
    return Effect.fail(
      new InvalidCharter({
        reason: `threshold ${terms.threshold} is more than the ${terms.operators.length} operator key(s)`
      })
    )
  }
  if (state.terms === null) return Effect.succeed([NetworkFounded.make(terms)])
  return sameTerms(state.terms, terms)
    ? Effect.succeed([])
    : Effect.fail(new CharterMismatch({ recorded: state.terms, requested: terms }))
}

const evolve = (state: CharterState, event: CharterEvent): CharterState =>
  state.terms === null
    ? {
      terms: {
        network: event.network,
        operators: event.operators,
        threshold: event.threshold,
        ...(event.sequencer === undefined ? {} : { sequencer: event.sequencer })
      }
    }
    : state

export const Charter: EventSourced<CharterCommand, CharterEvent, CharterState, CharterMismatch | InvalidCharter> = {
  category: "Charter",
  decider: { initialState: { terms: null }, decide, evolve },
  event: CharterEvent,
  state: CharterState
}

/** The one charter entity of a journal. */
export const CHARTER_ID = "network"
