/**
 * Business logic as a Decider: `decide` turns a command and the current state into events (or a
 * domain error), `evolve` folds an event into state. Both are pure; the journal is plumbing.
 */
import type { Effect, Schema } from "effect"

export interface Decider<Command, Event, State, Err = never, R = never> {
  readonly initialState: State
  /** May read time and randomness only through Effect's Clock and Random, and records what it drew. */
  readonly decide: (command: Command, state: State) => Effect.Effect<ReadonlyArray<Event>, Err, R>
  /** Pure and total: replaying the same events always gives the same state. */
  readonly evolve: (state: State, event: Event) => State
}

/**
 * A Decider bound to its storage: the stream category it owns, how its events are encoded
 * (each event's `_tag` becomes the envelope's `eventType`), and how its state is snapshotted.
 */
export interface EventSourced<Command, Event extends { readonly _tag: string }, State, Err = never, R = never> {
  readonly category: string
  readonly decider: Decider<Command, Event, State, Err, R>
  // The encoded side is each decider's own (Schema is invariant in it), so it is left open here.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly event: Schema.Schema<Event, any>
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly state: Schema.Schema<State, any>
}

export const fold = <Event, State>(
  evolve: (state: State, event: Event) => State,
  state: State,
  events: Iterable<Event>
): State => {
  let current = state
  for (const event of events) current = evolve(current, event)
  return current
}
