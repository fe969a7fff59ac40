/**
 * What an operator does about a policy's dead letters: run the policy once more on the event (when it
 * succeeds the record goes; when it fails again the record takes the new error and attempt), or clear
 * the record and let the event be. A letter is named `policy@position`, as its commands are.
 */
import { Cause, Clock, Effect, Exit, Schema } from "effect"
import { withAuthorization } from "./Authorization.js"
import { Checkpoints, DEAD_LETTER_ERROR_CHARS, DeadLetter } from "./Checkpoints.js"
import { Journal } from "./Journal.js"
import type { PolicyDefinition } from "./Policy.js"

export const DeadLetterKey = Schema.Struct({
  policy: Schema.String,
  position: Schema.Number.pipe(Schema.int(), Schema.positive())
})
export type DeadLetterKey = typeof DeadLetterKey.Type

/** One dead letter, or every one there is. */
export const DeadLetterTarget = Schema.Union(DeadLetterKey, Schema.Literal("all"))
export type DeadLetterTarget = typeof DeadLetterTarget.Type

export class DeadLetterNotFound extends Schema.TaggedError<DeadLetterNotFound>()("DeadLetterNotFound", {
  policy: Schema.String,
  position: Schema.Number
}) {
  override get message() {
    return `no dead letter ${this.policy}@${this.position}`
  }
}

/** What a retry did: `handled`, the record is gone; otherwise `error` says why (the record has it too). */
export const RetryOutcome = Schema.Struct({
  policy: Schema.String,
  position: Schema.Number,
  handled: Schema.Boolean,
  error: Schema.NullOr(Schema.String),
  attempts: Schema.Number
})
export type RetryOutcome = typeof RetryOutcome.Type

export const DeadLettersView = Schema.Struct({ count: Schema.Number, letters: Schema.Array(DeadLetter) })

const chosen = (target: DeadLetterTarget) =>
  Effect.gen(function*() {
    const checkpoints = yield* Checkpoints
    if (target !== "all") {
      const letter = yield* checkpoints.findDeadLetter(target.policy, target.position)
      if (letter === undefined) return yield* new DeadLetterNotFound(target)
      return [letter]
    }
    // In log order, as the policies met them.
    const all = yield* checkpoints.deadLetters(yield* checkpoints.deadLetterCount)
    return [...all].sort((a, b) => a.position - b.position)
  })

const retryOne = (policies: ReadonlyMap<string, PolicyDefinition<never>>, letter: DeadLetter) =>
  Effect.gen(function*() {
    const checkpoints = yield* Checkpoints
    const journal = yield* Journal
    const outcome = (handled: boolean, error: string | null, attempts: number): RetryOutcome => ({
      policy: letter.policy,
      position: letter.position,
      handled,
      error,
      attempts
    })
    const policy = policies.get(letter.policy)
    if (policy === undefined) return outcome(false, `no policy ${letter.policy} runs on this node`, letter.attempts)
    const [envelope] = yield* journal.readAll(letter.position, 1)
    if (envelope?.position !== letter.position) {
      return outcome(false, `event ${letter.position} is not in the journal`, letter.attempts)
    }
    // As the policy runs it: on no signed command's behalf, whatever command asked for the retry.
    const exit = yield* Effect.exit(withAuthorization(null)(policy.handle(envelope)))
    if (Exit.isSuccess(exit)) {
      yield* checkpoints.removeDeadLetter(letter.policy, letter.position)
      return outcome(true, null, letter.attempts + 1)
    }
    if (Cause.isInterruptedOnly(exit.cause)) return yield* Effect.interrupt
    const error = Cause.pretty(exit.cause).slice(0, DEAD_LETTER_ERROR_CHARS)
    const failedAt = new Date(yield* Clock.currentTimeMillis).toISOString()
    yield* checkpoints.deadLetter({ ...letter, error, attempts: 1, failedAt })
    return outcome(false, error, letter.attempts + 1)
  })

/** Runs each chosen letter's policy once more on its event, in log order, with `policies` by name. */
export const retry = (policies: ReadonlyMap<string, PolicyDefinition<never>>, target: DeadLetterTarget) =>
  Effect.flatMap(chosen(target), (letters) => Effect.forEach(letters, (letter) => retryOne(policies, letter))).pipe(
    Effect.withSpan("DeadLetters.retry")
  )

/** Forgets the chosen letters without running anything; returns what was cleared. */
export const clear = (target: DeadLetterTarget) =>
  Effect.gen(function*() {
    const checkpoints = yield* Checkpoints
    const letters = yield* chosen(target)
    for (const letter of letters) yield* checkpoints.removeDeadLetter(letter.policy, letter.position)
    return letters
  }).pipe(Effect.withSpan("DeadLetters.clear"))

/** How many there are, and the newest `limit`. */
export const list = (limit: number) =>
  Effect.gen(function*() {
    const checkpoints = yield* Checkpoints
    return { count: yield* checkpoints.deadLetterCount, letters: yield* checkpoints.deadLetters(limit) }
  }).pipe(Effect.withSpan("DeadLetters.list"))
