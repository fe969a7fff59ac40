/** The node's side of LearningRpc, on its Learning service. */
import { Effect } from "effect"
import { RoundRefused } from "./FederatedRound.js"
import { Learning } from "./Learning.js"
import { LearningRpcs } from "./LearningRpc.js"

export const LearningRpcHandlers = LearningRpcs.toLayer(
  Effect.gen(function*() {
    const learning = yield* Learning
    return {
      LearnRoundOpen: ({ auth: _, ...request }) => learning.open(request),
      LearnRoundSubmit: ({ auth: _, ...request }) => learning.submit(request),
      LearnRoundAggregate: ({ coordinator, roundId }) =>
        Effect.gen(function*() {
          const round = yield* learning.round(roundId)
          if (round.spec !== null && round.spec.coordinator !== coordinator) {
            return yield* Effect.fail(
              new RoundRefused({ roundId, reason: `only its coordinator ${round.spec.coordinator} aggregates it` })
            )
          }
          return yield* learning.aggregate(roundId)
        }),
      LearnRoundClose: ({ roundId }) => learning.close(roundId),
      LearnRound: ({ roundId }) =>
        Effect.flatMap(learning.round(roundId), (round) =>
          round.status === "none"
            ? Effect.fail(new RoundRefused({ roundId, reason: "no such round" }))
            : Effect.succeed(round))
    }
  })
)
