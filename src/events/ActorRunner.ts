/**
 * Turns an EventSourced decider into an actor keyed by entity id: one mailbox per entity (commands to
 * one entity run one at a time, different entities run concurrently), a state cache, snapshots every
 * N events, retry on version conflicts, and idempotency by command id. Group commit comes from the
 * journal, which commits the appends of concurrent entities in one transaction.
 */
import { Cause, Duration, Effect, Either, Exit, FiberRef, Option, Random, Schema } from "effect"
import { makeStreamId } from "../domain/Ids.js"
import * as Metrics from "../domain/Metrics.js"
import { ActorRegistry, type AuditFold, type AuditFolds } from "./ActorRegistry.js"
import { compareReplay, compareReplayed, forEachRecord } from "./Audit.js"
import { type Authorization, CurrentAuthorization } from "./Authorization.js"
import type { EventSourced } from "./Decider.js"
import type { Envelope, LoggedEvent } from "./Envelope.js"
import { type AppendResult, Journal, VersionConflict } from "./Journal.js"
import { RecentCommands } from "./RecentCommands.js"
import { type Snapshot, Snapshots } from "./Snapshots.js"

export interface ActorOptions {
  /** Save a snapshot each time an entity's version crosses a multiple of this (0 turns snapshots off). */
  readonly snapshotEvery?: number
  /** How many times a command is decided again after another writer moved the stream. */
  readonly maxRetries?: number
  /** Entities kept in memory; idle ones beyond this are dropped (and reloaded on demand). */
  readonly cacheCapacity?: number
  /**
   * How many recent commands each entity remembers: those of its last N events, read back from the
   * stream when the entity loads. A command id resent after this many newer commands to the same
   * entity runs again, as with EventStoreDB's and Kafka's idempotency windows; remembering every id
   * forever would cost an index write per event.
   */
  readonly idempotencyWindow?: number
}

export interface CommandOptions {
  /** Same id twice: the second delivery returns the first one's events and appends nothing. */
  readonly commandId?: string | undefined
  readonly causationId?: string | undefined
  /**
   * The signed command, stored with the events. `send` fills it from CurrentAuthorization when the
   * caller's fiber has one.
   */
  readonly authorization?: Authorization | null | undefined
}

/** One command of a pair (`sendPair`). */
export interface PairedCommand<Command> {
  readonly entityId: string
  readonly command: Command
  readonly options?: CommandOptions | undefined
}

/** The results of a pair's two commands, in the pair's order. */
export type Pair<Event, State> = readonly [CommandResult<Event, State>, CommandResult<Event, State>]

export interface CommandResult<Event, State> {
  readonly events: ReadonlyArray<Event>
  readonly state: State
  readonly version: number
  /** Global position of the last event this command appended (0 when it appended nothing). */
  readonly position: number
  /** True when the command id had already been handled and nothing new was appended. */
  readonly duplicate: boolean
}

export interface Actor<Command, Event, State, Err, R> {
  readonly category: string
  readonly send: (
    entityId: string,
    command: Command,
    options?: CommandOptions
  ) => Effect.Effect<CommandResult<Event, State>, Err | VersionConflict, R>
  /**
   * Two commands on two entities of this category in one transaction: each decided on its entity's
   * state, and the second appended only if the first was (a transfer's credit with its debit). Each
   * command id counts as `send` counts it. A stream moved by another writer is caught up and decided
   * again, as `send` does; should that happen to the second's stream once the first is written, the
   * second runs on its own.
   */
  readonly sendPair: (
    first: PairedCommand<Command>,
    second: PairedCommand<Command>
  ) => Effect.Effect<Pair<Event, State>, Err | VersionConflict, R>
  /**
   * `send` for a caller that needs no answer, as a policy finishing what a crash interrupted: a command
   * id the entity already ran returns at once, without reading back the events it appended then.
   */
  readonly tell: (
    entityId: string,
    command: Command,
    options?: CommandOptions
  ) => Effect.Effect<void, Err | VersionConflict, R>
  /** The entity's current state, caught up with every writer of the journal. */
  readonly state: (entityId: string) => Effect.Effect<{ readonly state: State; readonly version: number }>
  /** Every entity of this category folded from the log alone, with no snapshot and no cache. */
  readonly replay: (upToPosition?: number) => Effect.Effect<ReadonlyMap<string, Replayed<State>>>
  /** What replay folds, fed by a caller that reads the log once for several folds (audit.forEachRecord). */
  readonly startFold: () => ReplayFold<State>
  /**
   * What replay returns, taken from this actor's fold among `folds` when a shared read of the log has
   * already filled it (NodeAudit.replay), else replayed now.
   */
  readonly replayedIn: (folds?: AuditFolds) => Effect.Effect<ReadonlyMap<string, Replayed<State>>>
  /**
   * The state the actor holds for the entity, or would hold once loaded (snapshot, then the stream
   * after it), caught up with every writer. Unlike `state` it does not load an entity that is not in
   * memory: the audit reads thousands of entities and needs neither their recent command ids nor a cache.
   */
  readonly liveState: (entityId: string) => Effect.Effect<Replayed<State>>
  /** One entity folded from its stream alone, up to `version`. */
  readonly replayEntity: (entityId: string, upToVersion: number) => Effect.Effect<Replayed<State>>
  readonly encodeState: (state: State) => unknown
}

export interface Replayed<State> {
  readonly state: State
  readonly version: number
}

/** Entities folded from the events they are handed (this actor's category only, in log order). */
export interface ReplayFold<State> {
  /** Folds one event of the actor's category, its payload already parsed. */
  readonly step: (record: LoggedEvent, payload: unknown) => void
  readonly states: ReadonlyMap<string, Replayed<State>>
}

interface Entry<State> {
  readonly entityId: string
  readonly streamId: string
  readonly mailbox: Effect.Semaphore
  state: State
  version: number
  loaded: boolean
  inflight: number
  readonly commands: RecentCommands
}

const PAGE = 4096

/** Loading uses a snapshot only if it stands on the stream's event at its version (same position and hash). */
const snapshotHolds = (
  snapshot: Snapshot,
  event: { readonly streamVersion: number; readonly position: number; readonly hash: string } | undefined
) =>
  event !== undefined && event.streamVersion === snapshot.version && event.position === snapshot.position &&
  event.hash === snapshot.eventHash

/** `edge_net_commands_handled_total` of one category, a series per outcome. */
const commandCounters = (category: string) => {
  const of = (outcome: string) =>
    Metrics.counter("edge_net_commands_handled_total", "Commands actors handled, by category and outcome", {
      category,
      outcome
    })
  return {
    ok: of("ok"),
    duplicate: of("duplicate"),
    refused: of("refused"),
    conflict: of("conflict"),
    defect: of("defect")
  }
}

// What `tell` counts, having no result to count: a command that ran before, or one that ran now.
const toldDuplicate = Effect.succeed({ duplicate: true })
const toldNew = { duplicate: false }

const countOutcome =
  (counters: ReturnType<typeof commandCounters>) =>
  <A extends { readonly duplicate: boolean }, E>(exit: Exit.Exit<A, E>) =>
    Effect.sync(() => {
      if (Exit.isSuccess(exit)) return (exit.value.duplicate ? counters.duplicate : counters.ok).unsafeUpdate(1, [])
      if (Cause.isInterruptedOnly(exit.cause)) return
      const failure = Cause.failureOption(exit.cause)
      const counter = Option.isNone(failure)
        ? counters.defect
        : failure.value instanceof VersionConflict
        ? counters.conflict
        : counters.refused
      counter.unsafeUpdate(1, [])
    })

export const make = <Command, Event extends { readonly _tag: string }, State, Err, R>(
  definition: EventSourced<Command, Event, State, Err, R>,
  options: ActorOptions = {}
) =>
  Effect.gen(function*() {
    const journal = yield* Journal
    const snapshots = yield* Snapshots
    const { decider } = definition
    const snapshotEvery = options.snapshotEvery ?? 100
    const maxRetries = options.maxRetries ?? 8
    const cacheCapacity = options.cacheCapacity ?? 10_000
    const idempotencyWindow = options.idempotencyWindow ?? 1_000
    const encodeEvent = Schema.encodeSync(definition.event)
    const decodeEvent = Schema.decodeUnknownSync(definition.event)
    const encodeState = Schema.encodeSync(definition.state)
    const decodeState = Schema.decodeUnknownSync(definition.state)
    const entries = new Map<string, Entry<State>>()
    /** An entity not loaded yet, remembering the ids of its last `window` commands once it is. */
    const freshEntry = (entityId: string, window: number): Entry<State> => ({
      entityId,
      streamId: makeStreamId(definition.category, entityId),
      mailbox: Effect.unsafeMakeSemaphore(1),
      state: decider.initialState,
      version: 0,
      loaded: false,
      inflight: 0,
      commands: new RecentCommands(window)
    })
    const recordOutcome = countOutcome(commandCounters(definition.category))
    const recordPair = <E>(exit: Exit.Exit<Pair<Event, State>, E>) =>
      Exit.isSuccess(exit)
        ? Effect.zipRight(recordOutcome(Exit.succeed(exit.value[0])), recordOutcome(Exit.succeed(exit.value[1])))
        : recordOutcome(Exit.failCause(exit.cause))

    const entryFor = (entityId: string): Entry<State> => {
      let entry = entries.get(entityId)
      if (entry !== undefined) {
        entries.delete(entityId) // re-insert: Map order is our LRU order
      } else {
        entry = freshEntry(entityId, idempotencyWindow)
        if (entries.size >= cacheCapacity) evictIdle()
      }
      entries.set(entityId, entry)
      return entry
    }

    const evictIdle = () => {
      for (const [entityId, entry] of entries) {
        if (entries.size < cacheCapacity) return
        if (entry.inflight === 0) entries.delete(entityId)
      }
    }

    const apply = (entry: Entry<State>, envelopes: ReadonlyArray<Envelope>) => {
      for (const envelope of envelopes) {
        entry.state = decider.evolve(entry.state, decodeEvent(envelope.payload))
        entry.version = envelope.streamVersion
        if (envelope.commandId !== null) entry.commands.record(envelope.commandId, envelope.position)
      }
    }

    // Reads whatever other writers appended after our cached version.
    const catchUp = (entry: Entry<State>): Effect.Effect<void> =>
      Effect.suspend(() => journal.readStream(entry.streamId, entry.version + 1, PAGE)).pipe(
        Effect.flatMap((page) => {
          apply(entry, page)
          return page.length === PAGE ? catchUp(entry) : Effect.void
        })
      )

    const load = (entry: Entry<State>) =>
      Effect.gen(function*() {
        if (snapshotEvery > 0) {
          const snapshot = yield* snapshots.load(entry.streamId)
          if (Option.isSome(snapshot)) {
            const { version } = snapshot.value
            // The snapshot holds state only; the command ids of the events before it come from the stream,
            // read together with the event it names, which must be the stream's event at that version.
            const window = Math.max(1, Math.min(idempotencyWindow, version))
            const recent = yield* journal.readStream(entry.streamId, version - window + 1, window)
            if (snapshotHolds(snapshot.value, recent[recent.length - 1])) {
              entry.state = decodeState(snapshot.value.state)
              entry.version = version
              for (const envelope of recent.slice(recent.length - Math.min(idempotencyWindow, version))) {
                if (envelope.commandId !== null) entry.commands.record(envelope.commandId, envelope.position)
              }
            } else {
              yield* Effect.logWarning(
                `snapshot of ${entry.streamId} at version ${version} does not match the journal's event there: ignored, state rebuilt from the stream`
              )
            }
          }
        }
        yield* catchUp(entry)
        entry.loaded = true
      })

    const ensureLoaded = (entry: Entry<State>) => (entry.loaded ? Effect.void : load(entry))

    // The command already ran on this entity: answer with what it did then, appending nothing.
    const duplicateOf = (entry: Entry<State>, commandId: string | undefined) => {
      const span = commandId === undefined ? undefined : entry.commands.get(commandId)
      if (span === undefined) return Effect.succeed(Option.none<CommandResult<Event, State>>())
      return journal.readAll(span[0], span[1] - span[0] + 1).pipe(
        Effect.map((previous) =>
          Option.some({
            events: previous.filter((envelope) => envelope.streamId === entry.streamId).map((envelope) =>
              decodeEvent(envelope.payload)
            ),
            state: entry.state,
            version: entry.version,
            position: span[1],
            duplicate: true
          })
        )
      )
    }

    /** `last` is the entity's newest event, the one a snapshot taken now stands on. */
    const maybeSnapshot = (entry: Entry<State>, previousVersion: number, last: Envelope) =>
      snapshotEvery > 0 && Math.floor(entry.version / snapshotEvery) > Math.floor(previousVersion / snapshotEvery)
        ? snapshots.save(entry.streamId, {
          version: entry.version,
          position: last.position,
          eventHash: last.hash,
          state: encodeState(entry.state)
        })
        : Effect.void

    // Two writers racing on one entity (two nodes, or a node and the CLI) would otherwise collide again
    // on every retry: the second retry on waits a random, growing while (full jitter).
    const backoff = (retry: number) =>
      retry === 0
        ? Effect.void
        : Effect.flatMap(
          Random.nextIntBetween(0, Math.min(64, 2 ** retry)),
          (millis) => Effect.sleep(Duration.millis(millis))
        )

    /** Whether the entity has run the command id (one it remembers, in its window). */
    const ranBefore = (entry: Entry<State>, commandOptions: CommandOptions) =>
      commandOptions.commandId !== undefined && entry.commands.get(commandOptions.commandId) !== undefined

    /** Folds what an append wrote into the entity, and snapshots it when due: the command's result. */
    const applyAppended = (
      entry: Entry<State>,
      events: ReadonlyArray<Event>,
      appended: AppendResult,
      commandOptions: CommandOptions
    ): Effect.Effect<CommandResult<Event, State>> => {
      const previousVersion = entry.version
      for (const event of events) entry.state = decider.evolve(entry.state, event)
      entry.version = appended.streamVersion
      const envelopes = appended.envelopes
      if (commandOptions.commandId !== undefined) {
        for (const envelope of envelopes) entry.commands.record(commandOptions.commandId, envelope.position)
      }
      const last = envelopes[envelopes.length - 1]!
      const result = { events, state: entry.state, version: entry.version, position: last.position, duplicate: false }
      return Effect.as(maybeSnapshot(entry, previousVersion, last), result)
    }

    const encodeAll = (events: ReadonlyArray<Event>) =>
      events.map((event) => ({ eventType: event._tag, payload: encodeEvent(event) }))

    // The hot path, written as a plain chain of effects (no generator): decide, append, fold in.
    const attempt = (
      entry: Entry<State>,
      command: Command,
      commandOptions: CommandOptions,
      retriesLeft: number
    ): Effect.Effect<CommandResult<Event, State>, Err | VersionConflict, R> =>
      Effect.flatMap(decider.decide(command, entry.state), (events) => {
        if (events.length === 0) {
          return Effect.succeed({ events, state: entry.state, version: entry.version, position: 0, duplicate: false })
        }
        return Effect.matchEffect(journal.append(entry.streamId, entry.version, encodeAll(events), commandOptions), {
          onSuccess: (appended) => applyAppended(entry, events, appended, commandOptions),
          onFailure: (refused) => {
            // An event over the journal's size limit: bounded input should have stopped it before the
            // decider, so it is a defect (with its one-line message) and the actor's error type stays as it was.
            if (refused._tag === "PayloadTooLarge") return Effect.die(refused)
            // Another writer moved the stream: catch up (which also learns the command ids it ran) and decide again.
            return retriesLeft === 0
              ? Effect.fail(refused)
              : Effect.flatMap(Effect.zipRight(backoff(maxRetries - retriesLeft), catchUp(entry)), () =>
                Effect.flatMap(duplicateOf(entry, commandOptions.commandId), (ranElsewhere) =>
                  Option.isSome(ranElsewhere)
                    ? Effect.succeed(ranElsewhere.value)
                    : attempt(entry, command, commandOptions, retriesLeft - 1)))
          }
        })
      })

    /**
     * Two commands on two loaded entities, both mailboxes held: decided on their states and appended
     * in one transaction, the second only if the first was written. When either command id already
     * ran, the pair runs nothing: each is answered from the log if it ran, with no events if not (a
     * transfer id reused for another payee must not credit it; a credit a crash left undone before
     * pairs existed is the credits policy's to finish).
     */
    const attemptPair = (
      one: Entry<State>,
      first: Command,
      firstOptions: CommandOptions,
      two: Entry<State>,
      second: Command,
      secondOptions: CommandOptions,
      retriesLeft: number
    ): Effect.Effect<Pair<Event, State>, Err | VersionConflict, R> => {
      if (ranBefore(one, firstOptions) || ranBefore(two, secondOptions)) {
        const answer = (entry: Entry<State>, options: CommandOptions) =>
          Effect.map(
            duplicateOf(entry, options.commandId),
            Option.getOrElse((): CommandResult<Event, State> => ({
              events: [],
              state: entry.state,
              version: entry.version,
              position: 0,
              duplicate: false
            }))
          )
        // Caught up first: another writer may have run the other command (a debit before pairs existed).
        return Effect.zipRight(
          Effect.zip(catchUp(one), catchUp(two)),
          // Suspended: what ran is looked up once the catch-up has read it.
          Effect.suspend(() =>
            Effect.zip(answer(one, firstOptions), answer(two, secondOptions))
          )
        )
      }
      return Effect.flatMap(decider.decide(first, one.state), (firstEvents) =>
        Effect.flatMap(decider.decide(second, two.state), (secondEvents) => {
          if (firstEvents.length === 0 || secondEvents.length === 0) {
            return Effect.zip(
              attempt(one, first, firstOptions, maxRetries),
              attempt(two, second, secondOptions, maxRetries)
            )
          }
          const requests = [
            { ...firstOptions, streamId: one.streamId, expectedVersion: one.version, events: encodeAll(firstEvents) },
            {
              ...secondOptions,
              streamId: two.streamId,
              expectedVersion: two.version,
              events: encodeAll(secondEvents),
              onlyAfterPrevious: true
            }
          ]
          return Effect.flatMap(journal.appendBatch(requests), (outcomes) => {
            const firstOutcome = outcomes[0]!
            const secondOutcome = outcomes[1]!
            if (Either.isLeft(firstOutcome)) {
              const refused = firstOutcome.left
              if (refused._tag === "PayloadTooLarge") {
                return Effect.die(refused)
              }
              // Another writer moved the first stream, and nothing was written: catch both up, decide again.
              return retriesLeft === 0 ? Effect.fail(refused) : Effect.zipRight(
                Effect.zipRight(backoff(maxRetries - retriesLeft), Effect.zip(catchUp(one), catchUp(two))),
                Effect.suspend(() =>
                  attemptPair(one, first, firstOptions, two, second, secondOptions, retriesLeft - 1)
                )
              )
            }
            const firstResult = applyAppended(one, firstEvents, firstOutcome.right, firstOptions)
            if (Either.isLeft(secondOutcome)) {
              const refused = secondOutcome.left
              if (refused._tag === "PayloadTooLarge") return Effect.die(refused)
              // The first is written; another writer moved the second's stream: the second runs alone, as send retries.
              return Effect.zip(
                firstResult,
                Effect.zipRight(catchUp(two), Effect.suspend(() => handle(two, second, secondOptions)))
              )
            }
            return Effect.zip(firstResult, applyAppended(two, secondEvents, secondOutcome.right, secondOptions))
          })
        }))
    }

    const handle = (entry: Entry<State>, command: Command, commandOptions: CommandOptions) => {
      // The common case, decided without any lookup: a loaded entity and a command id it has not seen.
      if (entry.loaded && !ranBefore(entry, commandOptions)) {
        return attempt(entry, command, commandOptions, maxRetries)
      }
      return Effect.flatMap(ensureLoaded(entry), () =>
        Effect.flatMap(duplicateOf(entry, commandOptions.commandId), (duplicate) =>
          Option.isSome(duplicate)
            ? Effect.succeed(duplicate.value)
            : attempt(entry, command, commandOptions, maxRetries)))
    }

    // As handle, for a caller that wants no answer: a command id already run ends here.
    const handleQuietly = (entry: Entry<State>, command: Command, commandOptions: CommandOptions) =>
      Effect.flatMap(ensureLoaded(entry), () =>
        ranBefore(entry, commandOptions)
          ? toldDuplicate
          : Effect.as(attempt(entry, command, commandOptions, maxRetries), toldNew))

    /** The options with the caller's signed command (CurrentAuthorization) when it has one and they name none. */
    const withCallersAuthorization = <A>(
      commandOptions: CommandOptions,
      use: (options: CommandOptions) => Effect.Effect<A, Err | VersionConflict, R>
    ) =>
      Effect.flatMap(FiberRef.get(CurrentAuthorization), (authorization) =>
        use(
          authorization === null || commandOptions.authorization !== undefined
            ? commandOptions
            : { ...commandOptions, authorization }
        ))

    const withEntry = <A, E, R2>(entityId: string, use: (entry: Entry<State>) => Effect.Effect<A, E, R2>) =>
      Effect.suspend(() => {
        const entry = entryFor(entityId)
        entry.inflight++
        // Suspended: the command must see the state as it is once the mailbox is ours, not as it was when queued.
        return entry.mailbox.withPermits(1)(Effect.suspend(() =>
          use(entry)
        )).pipe(Effect.ensuring(Effect.sync(() =>
          entry.inflight--
        )))
      })

    const prefix = `${definition.category}-`
    // One entry per entity, updated in place: a fold of a million events allocates no object per event.
    const foldEvent = (states: Map<string, { state: State; version: number }>, record: LoggedEvent, event: Event) => {
      const entityId = record.streamId.slice(prefix.length)
      const entry = states.get(entityId)
      if (entry === undefined) {
        states.set(entityId, { state: decider.evolve(decider.initialState, event), version: record.streamVersion })
      } else {
        entry.state = decider.evolve(entry.state, event)
        entry.version = record.streamVersion
      }
    }
    const startFold = (): ReplayFold<State> => {
      const states = new Map<string, { state: State; version: number }>()
      return {
        step: (record, payload) =>
          foldEvent(states, record, decodeEvent(payload)),
        states
      }
    }
    const replay = (upToPosition = Number.MAX_SAFE_INTEGER) =>
      Effect.suspend(() => {
        const fold = startFold()
        // Stored records, so events of other categories are skipped without parsing their payloads.
        return forEachRecord(journal, (record) => {
          if (record.streamId.startsWith(prefix)) {
            fold.step(record, JSON.parse(record.payloadText))
          }
        }, upToPosition).pipe(Effect.as(fold.states))
      })

    const replayEntity = (entityId: string, upToVersion: number) =>
      Effect.gen(function*() {
        const streamId = makeStreamId(definition.category, entityId)
        let replayed: Replayed<State> = { state: decider.initialState, version: 0 }
        while (replayed.version < upToVersion) {
          const page = yield* journal.readStream(
            streamId,
            replayed.version + 1,
            Math.min(PAGE, upToVersion - replayed.version)
          )
          if (page.length === 0) {
            break
          }
          for (const envelope of page) {
            replayed = {
              state: decider.evolve(replayed.state, decodeEvent(envelope.payload)),
              version: envelope.streamVersion
            }
          }
        }
        return replayed
      })

    // The folds this actor made for the audit's shared read of the log, by the fold it handed out.
    const auditFolds = new WeakMap<AuditFold, ReplayFold<State>>()
    const replayedIn = (folds?: AuditFolds) =>
      Effect.suspend(() => {
        const shared = folds?.get(definition.category)
        const fold = shared === undefined ? undefined : auditFolds.get(shared)
        return fold === undefined ? replay() : Effect.succeed(fold.states)
      })

    const liveState = (entityId: string) =>
      Effect.suspend(() => {
        const cached = entries.get(entityId)
        if (cached !== undefined && cached.loaded) {
          return actor.state(entityId)
        }
        const entry = freshEntry(entityId, 1)
        return Effect.gen(function*() {
          const snapshot = snapshotEvery > 0 ? yield* snapshots.load(entry.streamId) : Option.none()
          if (Option.isSome(snapshot)) {
            const { version } = snapshot.value
            // As load: the snapshot counts only if it names the stream's event at its version.
            const [taken] = yield* journal.readStream(entry.streamId, version, 1)
            if (snapshotHolds(snapshot.value, taken)) {
              entry.state = decodeState(snapshot.value.state)
              entry.version = version
            }
          }
          yield* catchUp(entry)
          return { state: entry.state, version: entry.version }
        })
      })

    /**
     * What loading each entity would give, followed along a shared read of the log: from the event a
     * sealed snapshot stands on, the snapshot's state, then every later event of the stream folded into
     * it. Decoding and folding events the read has in hand costs less than reading every entity's tail
     * again (1M events, 8,000 entities: ~4 s of stream reads). An entity in memory is asked as it is.
     */
    const followLoading = (stored: ReadonlyMap<string, Snapshot>) => {
      const fromSnapshot = new Map<string, { state: State; version: number }>()
      return {
        step: (record: LoggedEvent, event: Event) => {
          const following = fromSnapshot.get(record.streamId)
          if (following !== undefined) {
            following.state = decider.evolve(following.state, event)
            following.version = record.streamVersion
            return
          }
          const snapshot = stored.get(record.streamId)
          if (snapshot !== undefined && snapshotHolds(snapshot, record)) {
            fromSnapshot.set(record.streamId, { state: decodeState(snapshot.state), version: snapshot.version })
          }
        },
        liveState: (
          entityId: string,
          replayed: ReadonlyMap<string, Replayed<State>>
        ): Effect.Effect<Replayed<State>> => {
          const cached = entries.get(entityId)
          if (cached !== undefined && cached.loaded) {
            return actor.state(entityId)
          }
          // No snapshot that holds: loading folds the whole stream, which is what the fold did.
          const following = fromSnapshot.get(makeStreamId(definition.category, entityId))
          return Effect.succeed(following ?? replayed.get(entityId) ?? { state: decider.initialState, version: 0 })
        }
      }
    }

    const actor: Actor<Command, Event, State, Err, R> = {
      category: definition.category,
      // The authorization is read here, in the caller's fiber: the mailbox may run the command elsewhere.
      send: (entityId, command, commandOptions = {}) =>
        withCallersAuthorization(commandOptions, (options) =>
          withEntry(entityId, (entry) =>
            handle(entry, command, options))).pipe(Effect.onExit(recordOutcome)),
      sendPair: (first, second) =>
        first.entityId === second.entityId
          ? Effect.dieMessage(`a pair of commands is for two entities, both were for ${first.entityId}`)
          : withCallersAuthorization(first.options ?? {}, (firstOptions) =>
            withCallersAuthorization(second.options ?? {}, (secondOptions) => {
              // Mailboxes taken in one order (by id) by every pair, so two pairs never wait on each other.
              const [low, high] = first.entityId < second.entityId ? [first, second] : [second, first]
              return withEntry(low.entityId, (lowEntry) =>
                withEntry(high.entityId, (highEntry) => {
                  const [one, two] = low === first ? [lowEntry, highEntry] : [highEntry, lowEntry]
                  return Effect.zipRight(
                    Effect.zip(ensureLoaded(one), ensureLoaded(two)),
                    // Suspended: decided on the states as loaded, not as they were before.
                    Effect.suspend(() =>
                      attemptPair(one, first.command, firstOptions, two, second.command, secondOptions, maxRetries)
                    )
                  )
                }))
            })).pipe(Effect.onExit(recordPair)),
      tell: (entityId, command, commandOptions = {}) =>
        withCallersAuthorization(commandOptions, (options) =>
          withEntry(entityId, (entry) =>
            handleQuietly(entry, command, options))).pipe(
            Effect.onExit(recordOutcome),
            Effect.asVoid
          ),
      state: (entityId) =>
        withEntry(entityId, (entry) =>
          // Loading catches up by itself; a loaded entity only reads what other writers added since.
          (entry.loaded ? catchUp(entry) : load(entry)).pipe(
            Effect.map(() => ({ state: entry.state, version: entry.version }))
          )),
      replay,
      startFold,
      replayedIn,
      liveState,
      replayEntity,
      encodeState
    }
    // Where the node keeps a registry, its audit replays this actor; a library user's runner needs none.
    const registry = yield* Effect.serviceOption(ActorRegistry)
    if (Option.isSome(registry)) {
      yield* registry.value.register({
        category: actor.category,
        compareReplay: compareReplay(actor),
        startFold: (stored) => {
          const states = new Map<string, { state: State; version: number }>()
          const fold: ReplayFold<State> = {
            step: (record, payload) =>
              foldEvent(states, record, decodeEvent(payload)),
            states
          }
          // Without snapshots (snapshotEvery 0) loading folds the whole stream, whatever the table holds.
          const loaded = stored === undefined ? undefined : followLoading(snapshotEvery > 0 ? stored : new Map())
          const shared: AuditFold = {
            step: loaded === undefined ? fold.step : (record, payload) => {
              const event = decodeEvent(payload)
              foldEvent(states, record, event)
              loaded.step(record, event)
            },
            compare: Effect.suspend(() =>
              compareReplayed(
                loaded === undefined
                  ? actor
                  : {
                    ...actor,
                    liveState: (entityId) =>
                      loaded.liveState(entityId, states)
                  },
                states
              )
            )
          }
          auditFolds.set(shared, fold)
          return shared
        }
      })
    }
    return actor
  })

export { VersionConflict }
