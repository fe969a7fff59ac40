/**
 * Given / when / then for deciders, after emmett's DeciderSpecification: given past events, when a
 * command arrives, then these events (or this error). No journal, no database, no clock of its own.
 */
import { Effect, Either, Equal } from "effect"
import type { Decider } from "./Decider.js"
import { fold } from "./Decider.js"

export interface DeciderThen<Event, Err> {
  /** Fails the effect when the decider produced other events (or failed). */
  readonly then: (expected: ReadonlyArray<Event>) => Effect.Effect<void>
  /** Fails the effect unless the decider failed with an error that `check` accepts. */
  readonly thenFails: (check?: (error: Err) => boolean) => Effect.Effect<void>
  readonly thenNothing: () => Effect.Effect<void>
}

export class SpecificationFailure extends Error {
  override readonly name = "SpecificationFailure"
}

const show = (value: unknown) => JSON.stringify(value, (_key, item) => (typeof item === "bigint" ? `${item}n` : item))

export const DeciderSpecification = {
  for: <Command, Event, State, Err, R>(decider: Decider<Command, Event, State, Err, R>) => ({
    given: (events: ReadonlyArray<Event>) => ({
      when: (
        command: Command
      ): DeciderThen<Event, Err> & {
        readonly outcome: Effect.Effect<Either.Either<ReadonlyArray<Event>, Err>, never, R>
      } => {
        const outcome = Effect.either(decider.decide(command, fold(decider.evolve, decider.initialState, events)))
        const expectEvents = (expected: ReadonlyArray<Event>) =>
          Effect.flatMap(outcome, (result) =>
            Either.isLeft(result)
              ? Effect.die(
                new SpecificationFailure(`expected events ${show(expected)}, decider failed with ${show(result.left)}`)
              )
              : result.right.length === expected.length && result.right.every((event, index) =>
                  Equal.equals(event, expected[index]) || show(event) === show(expected[index])
                )
              ? Effect.void
              : Effect.die(new SpecificationFailure(`expected events ${show(expected)}, got ${show(result.right)}`)))
        return {
          outcome,
          then: expectEvents as (expected: ReadonlyArray<Event>) => Effect.Effect<void>,
          thenNothing: () => expectEvents([]) as Effect.Effect<void>,
          thenFails: (check) =>
            Effect.flatMap(outcome, (result) =>
              Either.isRight(result)
                ? Effect.die(new SpecificationFailure(`expected a failure, decider produced ${show(result.right)}`))
                : check === undefined || check(result.left)
                ? Effect.void
                : Effect.die(
                  new SpecificationFailure(`the decider failed with an unexpected error ${show(result.left)}`)
                )) as Effect.Effect<void>
        }
      }
    })
  })
}
