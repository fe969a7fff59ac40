/**
 * Turns an EventSourced decider into an actor keyed by entity id: one mailbox per entity (commands to
 * one entity run one at a time, different entities run concurrently), a state cache, snapshots every
 * N events, retry on version conflicts, and idempotency by command id. Group commit comes from the
 * journal, which commits the appends of concurrent entities in one transaction.
 */
import { Effect, Either, Option, Schema } from "effect"
import { makeStreamId, streamCategory, streamEntityId } from "../domain/Ids.js"
import type { EventSourced } from "./Decider.js"
import type { Envelope } from "./Envelope.js"
import { Journal, VersionConflict } from "./Journal.js"
import { Snapshots } from "./Snapshots.js"

export interface ActorOptions {
  /** Save a snapshot each time an entity's version crosses a multiple of this (0 turns snapshots off). */
  readonly snapshotEvery?: number
  /** How many times a command is decided again after another writer moved the stream. */
  readonly maxRetries?: number
  /** Entities kept in memory; idle ones beyond this are dropped (and reloaded on demand). */
  readonly cacheCapacity?: number
  /**
   * How many recent command ids each entity remembers (and carries in its snapshots). A command id
   * resent after this many newer commands to the same entity runs again, as with EventStoreDB's and
   * Kafka's idempotency windows; keeping every id forever would cost an index write per event.
   */
  readonly idempotencyWindow?: number
}

export interface CommandOptions {
  /** Same id twice: the second delivery returns the first one's events and appends nothing. */
  readonly commandId?: string | undefined
  readonly causationId?: string | undefined
}

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
  /** The entity's current state, caught up with every writer of the journal. */
  readonly state: (entityId: string) => Effect.Effect<{ readonly state: State; readonly version: number }>
  /** Every entity of this category folded from the log alone, with no snapshot and no cache. */
  readonly replay: (upToPosition?: number) => Effect.Effect<ReadonlyMap<string, Replayed<State>>>
  /** One entity folded from its stream alone, up to `version`. */
  readonly replayEntity: (entityId: string, upToVersion: number) => Effect.Effect<Replayed<State>>
  readonly encodeState: (state: State) => unknown
}

/** Where the events of one command sit in the log: one append, so consecutive positions. */
type CommandSpan = readonly [first: number, last: number]

export interface Replayed<State> {
  readonly state: State
  readonly version: number
}

interface Entry<State> {
  readonly entityId: string
  readonly streamId: string
  readonly mailbox: Effect.Semaphore
  state: State
  version: number
  loaded: boolean
  inflight: number
  readonly commands: Map<string, CommandSpan>
}

interface StoredSnapshot {
  readonly state: unknown
  readonly commands: ReadonlyArray<readonly [string, number, number]>
}

const PAGE = 4096

export const make = <Command, Event extends { readonly _tag: string }, State, Err, R>(
  definition: EventSourced<Command, Event, State, Err, R>,
  options: ActorOptions = {}
) =>
  Effect.gen(function* () {
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

    const entryFor = (entityId: string): Entry<State> => {
      let entry = entries.get(entityId)
      if (entry !== undefined) {
        entries.delete(entityId) // re-insert: Map order is our LRU order
      } else {
        entry = {
          entityId, streamId: makeStreamId(definition.category, entityId), mailbox: Effect.unsafeMakeSemaphore(1),
          state: decider.initialState, version: 0, loaded: false, inflight: 0, commands: new Map()
        }
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

    const remember = (entry: Entry<State>, commandId: string | null, first: number, last: number) => {
      if (commandId === null) return
      const known = entry.commands.get(commandId)
      entry.commands.set(commandId, [known?.[0] ?? first, last])
      if (known === undefined && entry.commands.size > idempotencyWindow) entry.commands.delete(entry.commands.keys().next().value!)
    }

    const apply = (entry: Entry<State>, envelopes: ReadonlyArray<Envelope>) => {
      for (const envelope of envelopes) {
        entry.state = decider.evolve(entry.state, decodeEvent(envelope.payload))
        entry.version = envelope.streamVersion
        remember(entry, envelope.commandId, envelope.position, envelope.position)
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
      Effect.gen(function* () {
        if (snapshotEvery > 0) {
          const snapshot = yield* snapshots.load(entry.streamId)
          if (Option.isSome(snapshot)) {
            const stored = snapshot.value.state as StoredSnapshot
            entry.state = decodeState(stored.state)
            entry.version = snapshot.value.version
            for (const [commandId, first, last] of stored.commands) entry.commands.set(commandId, [first, last])
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
            events: previous.filter((envelope) => envelope.streamId === entry.streamId).map((envelope) => decodeEvent(envelope.payload)),
            state: entry.state,
            version: entry.version,
            position: span[1],
            duplicate: true
          })
        )
      )
    }

    const maybeSnapshot = (entry: Entry<State>, previousVersion: number) =>
      snapshotEvery > 0 && Math.floor(entry.version / snapshotEvery) > Math.floor(previousVersion / snapshotEvery)
        ? snapshots.save(entry.streamId, {
            version: entry.version,
            state: { state: encodeState(entry.state), commands: [...entry.commands].map(([id, [first, last]]) => [id, first, last]) } satisfies StoredSnapshot
          })
        : Effect.void

    const handle = (entry: Entry<State>, command: Command, commandOptions: CommandOptions) =>
      Effect.gen(function* () {
        yield* ensureLoaded(entry)
        const duplicate = yield* duplicateOf(entry, commandOptions.commandId)
        if (Option.isSome(duplicate)) return duplicate.value
        for (let attempt = 0; ; attempt++) {
          const events = yield* decider.decide(command, entry.state)
          if (events.length === 0) {
            return { events, state: entry.state, version: entry.version, position: 0, duplicate: false }
          }
          const appended = yield* Effect.either(
            journal.append(
              entry.streamId,
              entry.version,
              events.map((event) => ({ eventType: event._tag, payload: encodeEvent(event) })),
              commandOptions
            )
          )
          if (Either.isRight(appended)) {
            const previousVersion = entry.version
            for (const event of events) entry.state = decider.evolve(entry.state, event)
            entry.version = appended.right.streamVersion
            const envelopes = appended.right.envelopes
            remember(entry, envelopes[0]!.commandId, envelopes[0]!.position, envelopes[envelopes.length - 1]!.position)
            yield* maybeSnapshot(entry, previousVersion)
            return { events, state: entry.state, version: entry.version, position: envelopes[envelopes.length - 1]!.position, duplicate: false }
          }
          if (attempt >= maxRetries) return yield* Effect.fail(appended.left)
          // Another writer moved the stream: catch up (which also learns the command ids it ran).
          yield* catchUp(entry)
          const ranElsewhere = yield* duplicateOf(entry, commandOptions.commandId)
          if (Option.isSome(ranElsewhere)) return ranElsewhere.value
        }
      })

    const withEntry = <A, E, R2>(entityId: string, use: (entry: Entry<State>) => Effect.Effect<A, E, R2>) =>
      Effect.suspend(() => {
        const entry = entryFor(entityId)
        entry.inflight++
        return entry.mailbox.withPermits(1)(use(entry)).pipe(Effect.ensuring(Effect.sync(() => entry.inflight--)))
      })

    const replay = (upToPosition = Number.MAX_SAFE_INTEGER) =>
      Effect.gen(function* () {
        const states = new Map<string, Replayed<State>>()
        let position = 1
        while (position <= upToPosition) {
          const page = yield* journal.readAll(position, PAGE)
          for (const envelope of page) {
            if (envelope.position > upToPosition) break
            if (streamCategory(envelope.streamId) !== definition.category) continue
            const entityId = streamEntityId(envelope.streamId)
            const state = states.get(entityId)?.state ?? decider.initialState
            states.set(entityId, { state: decider.evolve(state, decodeEvent(envelope.payload)), version: envelope.streamVersion })
          }
          if (page.length < PAGE) break
          position = page[page.length - 1]!.position + 1
        }
        return states as ReadonlyMap<string, Replayed<State>>
      })

    const replayEntity = (entityId: string, upToVersion: number) =>
      Effect.gen(function* () {
        const streamId = makeStreamId(definition.category, entityId)
        let replayed: Replayed<State> = { state: decider.initialState, version: 0 }
        while (replayed.version < upToVersion) {
          const page = yield* journal.readStream(streamId, replayed.version + 1, Math.min(PAGE, upToVersion - replayed.version))
          if (page.length === 0) break
          for (const envelope of page) {
            replayed = { state: decider.evolve(replayed.state, decodeEvent(envelope.payload)), version: envelope.streamVersion }
          }
        }
        return replayed
      })

    const actor: Actor<Command, Event, State, Err, R> = {
      category: definition.category,
      send: (entityId, command, commandOptions = {}) =>
        withEntry(entityId, (entry) => handle(entry, command, commandOptions)),
      state: (entityId) =>
        withEntry(entityId, (entry) =>
          ensureLoaded(entry).pipe(
            Effect.zipRight(catchUp(entry)),
            Effect.map(() => ({ state: entry.state, version: entry.version }))
          )
        ),
      replay,
      replayEntity,
      encodeState
    }
    return actor
  })

export { VersionConflict }
