/**
 * A node's gossip learning as an event-sourced entity (the seed's P2PGradientAggregator, with no
 * coordinator): started on an adapter the node keeps, with the samples behind it; each signed push a
 * neighbour sent and this node merged, with the weights it was heard with and the adapter it led to;
 * stopped. Replaying the log rebuilds which adapter the node holds now and how it came to it.
 */
import { Effect, Schema } from "effect"
import type { EventSourced } from "../../events/Decider.js"

const AdapterPin = Schema.Struct({ id: Schema.String, version: Schema.String, checksum: Schema.String })

export const GossipSettings = Schema.Struct({
  /** Neighbours this node pushes its adapter to per exchange. */
  fanout: Schema.Number.pipe(Schema.int(), Schema.between(1, 64)),
  /** Time between two of its exchanges. */
  intervalMs: Schema.Number.pipe(Schema.int(), Schema.between(100, 86_400_000)),
  /** Examples behind the node's own adapter: its weight in every merge. */
  samples: Schema.Number.pipe(Schema.int(), Schema.positive())
})

export const GossipStarted = Schema.TaggedStruct("GossipStarted", {
  adapter: AdapterPin,
  baseModelDigest: Schema.String,
  ...GossipSettings.fields
})
export const GossipMerged = Schema.TaggedStruct("GossipMerged", {
  /** The pushing peer's account, which signed the push. */
  from: Schema.String,
  /** sha256 of the pushed adapter document. */
  digest: Schema.String,
  samples: Schema.Number,
  /** The pusher's reputation here at the merge (0 to 1). */
  reputation: Schema.Number,
  /** The shares of this node's adapter and the pushed one in the weighted mean. */
  ownWeight: Schema.Number,
  theirWeight: Schema.Number,
  result: AdapterPin,
  /** The largest relative error of re-factoring a module's merged ΔW to the adapter's rank. */
  refactorError: Schema.Number
})
export const GossipStopped = Schema.TaggedStruct("GossipStopped", {})
export const GossipEvent = Schema.Union(GossipStarted, GossipMerged, GossipStopped)
export type GossipEvent = typeof GossipEvent.Type

export const GossipState = Schema.Struct({
  status: Schema.Literal("idle", "running", "stopped"),
  /** The adapter the node holds now: where it started, or the last merge's result. */
  adapter: Schema.NullOr(AdapterPin),
  baseModelDigest: Schema.NullOr(Schema.String),
  settings: Schema.NullOr(GossipSettings),
  merges: Schema.Number,
  last: Schema.NullOr(GossipMerged)
})
export type GossipState = typeof GossipState.Type

export type GossipCommand =
  | { readonly _tag: "Start"; readonly started: Omit<typeof GossipStarted.Type, "_tag"> }
  | { readonly _tag: "Merge"; readonly merged: Omit<typeof GossipMerged.Type, "_tag"> }
  | { readonly _tag: "Stop" }

const initialState: GossipState = {
  status: "idle",
  adapter: null,
  baseModelDigest: null,
  settings: null,
  merges: 0,
  last: null
}

const decide = (command: GossipCommand, state: GossipState): Effect.Effect<ReadonlyArray<GossipEvent>, string> => {
  switch (command._tag) {
    case "Start":
      return state.status === "running"
        ? Effect.fail(`this node gossips already, on ${state.adapter!.id}@${state.adapter!.version}: stop it first`)
        : Effect.succeed([GossipStarted.make(command.started)])
    case "Merge":
      if (state.status !== "running") return Effect.fail("this node is not gossiping")
      if (command.merged.from.length === 0) return Effect.fail("a push names its sender")
      return Effect.succeed([GossipMerged.make(command.merged)])
    case "Stop":
      return state.status === "running" ? Effect.succeed([GossipStopped.make({})]) : Effect.succeed([])
  }
}

const evolve = (state: GossipState, event: GossipEvent): GossipState => {
  switch (event._tag) {
    case "GossipStarted": {
      const { _tag, adapter, baseModelDigest, ...settings } = event
      return { ...state, status: "running", adapter, baseModelDigest, settings }
    }
    case "GossipMerged":
      return { ...state, adapter: event.result, merges: state.merges + 1, last: event }
    case "GossipStopped":
      return { ...state, status: "stopped" }
  }
}

export class GossipRefused extends Schema.TaggedError<GossipRefused>()("GossipRefused", { reason: Schema.String }) {
  override get message() {
    return `gossip: ${this.reason}`
  }
}

/** One learner per node, under this id. */
export const GOSSIP_LEARNER_ID = "node"

export const GossipLearner: EventSourced<GossipCommand, GossipEvent, GossipState, string> = {
  category: "Gossip",
  decider: { initialState, decide, evolve },
  event: GossipEvent,
  state: GossipState
}
