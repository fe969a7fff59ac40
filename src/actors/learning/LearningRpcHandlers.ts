/** The node's side of LearningRpc, on its Learning service. */
import { Effect } from "effect"
import * as crypto from "node:crypto"
import { RoundRefused } from "./FederatedRound.js"
import { GossipLearning } from "./GossipLearning.js"
import { Learning } from "./Learning.js"
import { LearningRpcs } from "./LearningRpc.js"

export const LearningRpcHandlers = LearningRpcs.toLayer(
  Effect.gen(function*() {
    const learning = yield* Learning
    const gossip = yield* GossipLearning
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
            : Effect.succeed(round)),
      LearnRoundBase: ({ roundId }) => learning.baseDocument(roundId),
      LearnGossipStart: ({ adapter, fanout, intervalMs, samples }) =>
        gossip.start({ adapter, fanout, intervalMs, samples }),
      LearnGossipStop: () => gossip.stop(),
      LearnGossip: () => gossip.state,
      // The push's signed command id: the same push delivered twice is merged once.
      LearnGossipPush: ({ auth, document, from, samples }) =>
        gossip.merge({ from, document, samples }, `gossip-push/${auth?.id ?? crypto.randomUUID()}`)
    }
  })
)
