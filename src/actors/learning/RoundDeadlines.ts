/**
 * Settles every round of this node's journal at its deadline: the node that holds a round aggregates
 * it when it has its quorum and closes it as failed when it has not, so a peer that dies mid-round
 * holds nothing up. Rounds are found by following the journal from its start (a restarted node
 * settles what came due while it was down).
 */
import { Clock, Duration, Effect, Layer, Schedule, Schema, Stream } from "effect"
import { Journal } from "../../events/Journal.js"
import { FederatedRound, RoundOpened } from "./FederatedRound.js"
import { Learning } from "./Learning.js"

const decodeOpened = Schema.decodeUnknownOption(RoundOpened)

/** A round settled this long after its deadline, so that the deadline has surely passed on the clock. */
const GRACE_MS = 50

export const roundDeadlines = Layer.scopedDiscard(
  Effect.gen(function*() {
    const journal = yield* Journal
    const learning = yield* Learning
    const prefix = `${FederatedRound.category}-`

    const settleAt = (roundId: string, deadline: number) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        yield* Effect.sleep(Duration.millis(Math.max(0, deadline - now + GRACE_MS)))
        const settled = yield* learning.settle(roundId).pipe(
          Effect.retry(Schedule.spaced("1 second").pipe(Schedule.compose(Schedule.recurs(5))))
        )
        yield* Effect.logInfo(`round ${roundId} settled at its deadline: ${settled.status}`)
      }).pipe(
        Effect.catchAllCause((cause) => Effect.logWarning(`settling round ${roundId} failed`, cause))
      )

    yield* journal.subscribe(1).pipe(
      Stream.filter((envelope) => envelope.eventType === "RoundOpened" && envelope.streamId.startsWith(prefix)),
      Stream.runForEach((envelope) => {
        const opened = decodeOpened(envelope.payload)
        return opened._tag === "Some"
          ? Effect.asVoid(Effect.forkScoped(settleAt(opened.value.roundId, opened.value.spec.deadline)))
          : Effect.void
      }),
      Effect.forkScoped
    )
  })
)
