/**
 * The actors a node runs, as its audit reads them: every ActorRunner registers itself here when it
 * is made, so `audit replay` replays each actor the node runs and no hand-kept list can miss one.
 */
import { Context, Effect, Layer } from "effect"
import type { ReplayReport } from "./Audit.js"
import type { LoggedEvent } from "./Envelope.js"
import type { Snapshot } from "./Snapshots.js"

/** An actor's entities folded from events its reader hands it, then compared with the live state. */
export interface AuditFold {
  /** Folds one event of the actor's category, its payload already parsed. */
  readonly step: (record: LoggedEvent, payload: unknown) => void
  readonly compare: Effect.Effect<ReplayReport>
}

/** The folds of one shared read of the log, by category. */
export type AuditFolds = ReadonlyMap<string, AuditFold>

/** Something else folded from one category's events in the same read (a ledger's flows, say). */
export interface LogObserver {
  readonly category: string
  /** Folds one event of the category, its payload already parsed. */
  readonly step: (record: LoggedEvent, payload: unknown) => void
}

/** What the audit may do with an actor: rebuild it from the log and compare; never send it a command. */
export interface AuditedActor {
  readonly category: string
  /** Reads the log itself. */
  readonly compareReplay: Effect.Effect<ReplayReport>
  /**
   * A fold for a read of the log that the audit shares between every actor (NodeAudit.replay).
   * `snapshots` (sealed ones, by stream id) lets it also follow what loading an entity would give
   * (its snapshot, then the events after it) in the same read, instead of reading each stream again.
   */
  readonly startFold: (snapshots?: ReadonlyMap<string, Snapshot>) => AuditFold
}

export class ActorRegistry extends Context.Tag("edge-net/ActorRegistry")<ActorRegistry, {
  /** The first actor made for a category stands for it; another runner on the same streams reads the same log. */
  readonly register: (actor: AuditedActor) => Effect.Effect<void>
  /** Every registered actor, by category. */
  readonly actors: Effect.Effect<ReadonlyArray<AuditedActor>>
}>() {
  static readonly layer = Layer.sync(ActorRegistry, () => {
    const byCategory = new Map<string, AuditedActor>()
    return {
      register: (actor) =>
        Effect.sync(() => {
          if (!byCategory.has(actor.category)) byCategory.set(actor.category, actor)
        }),
      actors: Effect.sync(() => [...byCategory.values()].sort((a, b) => a.category.localeCompare(b.category)))
    }
  })
}
