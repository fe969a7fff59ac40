/**
 * A node's resident LoRA adapters as one event-sourced entity (`AdapterPool-<pool>`): at most 16 slots
 * and a memory budget, least-recently-used eviction that never touches pinned adapters, and selection
 * of the adapter whose task embedding is nearest a query. Recency is a logical clock kept in state, so
 * replaying the log rebuilds the same order without reading wall time.
 */
import { Effect, Either, Schema } from "effect"
import type { EventSourced } from "../../events/Decider.js"

/** The seed's slot count, and a hard cap: the pool is configured at or below it. */
export const MAX_SLOTS = 16
export const DEFAULT_MEMORY_BUDGET_BYTES = 256 * 1024 * 1024

/** How a resident adapter is named in the pool: `<adapterId>@<version>`. */
export const adapterKey = (adapterId: string, version: string): string => `${adapterId}@${version}`

export const EvictionReason = Schema.Literal("slots", "memory", "slots-lowered", "budget-lowered")
export type EvictionReason = typeof EvictionReason.Type

/** A unit vector: decide normalizes embeddings before recording them, evolve stores them as recorded. */
const Embedding = Schema.Array(Schema.Number)

// Events
export const AdapterLoaded = Schema.TaggedStruct("AdapterLoaded", {
  key: Schema.String,
  adapterId: Schema.String,
  version: Schema.String,
  bytes: Schema.Number,
  embedding: Schema.NullOr(Embedding),
  pinned: Schema.Boolean
})
export const AdapterEvicted = Schema.TaggedStruct("AdapterEvicted", {
  key: Schema.String,
  bytes: Schema.Number,
  reason: EvictionReason
})
/** A use; `similarity` when the pool chose the adapter for a task embedding (cosine, for audits). */
export const AdapterUsed = Schema.TaggedStruct("AdapterUsed", {
  key: Schema.String,
  similarity: Schema.optionalWith(Schema.Number, { exact: true })
})
export const AdapterPinned = Schema.TaggedStruct("AdapterPinned", { key: Schema.String })
export const AdapterUnpinned = Schema.TaggedStruct("AdapterUnpinned", { key: Schema.String })
export const AdapterUnloaded = Schema.TaggedStruct("AdapterUnloaded", { key: Schema.String, bytes: Schema.Number })
export const PoolConfigured = Schema.TaggedStruct("PoolConfigured", {
  maxSlots: Schema.Number,
  memoryBudgetBytes: Schema.Number
})
export const AdapterPoolEvent = Schema.Union(
  AdapterLoaded,
  AdapterEvicted,
  AdapterUsed,
  AdapterPinned,
  AdapterUnpinned,
  AdapterUnloaded,
  PoolConfigured
)
export type AdapterPoolEvent = typeof AdapterPoolEvent.Type

export const ResidentAdapter = Schema.Struct({
  adapterId: Schema.String,
  version: Schema.String,
  bytes: Schema.Number,
  embedding: Schema.NullOr(Embedding),
  pinned: Schema.Boolean,
  /** The pool's clock at the adapter's last load or use: the smallest is evicted first. */
  lastUsed: Schema.Number
})
export type ResidentAdapter = typeof ResidentAdapter.Type

export const AdapterPoolState = Schema.Struct({
  maxSlots: Schema.Number,
  memoryBudgetBytes: Schema.Number,
  /** Logical clock: one tick per load or use. */
  clock: Schema.Number,
  residents: Schema.Record({ key: Schema.String, value: ResidentAdapter })
})
export type AdapterPoolState = typeof AdapterPoolState.Type

export interface PoolLimits {
  readonly maxSlots?: number | undefined
  readonly memoryBudgetBytes?: number | undefined
}

export interface AdapterToLoad {
  readonly adapterId: string
  readonly version: string
  readonly bytes: number
  readonly embedding?: ReadonlyArray<number> | undefined
  readonly pin?: boolean | undefined
}

export type AdapterPoolCommand =
  | ({ readonly _tag: "Load" } & AdapterToLoad)
  | { readonly _tag: "Use"; readonly key: string }
  | { readonly _tag: "Pin"; readonly key: string }
  | { readonly _tag: "Unpin"; readonly key: string }
  | { readonly _tag: "Unload"; readonly key: string }
  | ({ readonly _tag: "Configure" } & PoolLimits)
  | { readonly _tag: "Select"; readonly embedding: ReadonlyArray<number> }

// Errors a user can hit, each readable in one line.
export class InvalidAdapter
  extends Schema.TaggedError<InvalidAdapter>()("InvalidAdapter", { key: Schema.String, reason: Schema.String })
{
  override get message() {
    return `invalid adapter ${this.key}: ${this.reason}`
  }
}

export class InvalidEmbedding
  extends Schema.TaggedError<InvalidEmbedding>()("InvalidEmbedding", { reason: Schema.String })
{
  override get message() {
    return `invalid task embedding: ${this.reason}`
  }
}

export class EmbeddingDimensionMismatch
  extends Schema.TaggedError<EmbeddingDimensionMismatch>()("EmbeddingDimensionMismatch", {
    expected: Schema.Number,
    actual: Schema.Number
  })
{
  override get message() {
    return `task embedding has ${this.actual} dimensions, the pool's adapters have ${this.expected}`
  }
}

export class InvalidPoolConfig
  extends Schema.TaggedError<InvalidPoolConfig>()("InvalidPoolConfig", { reason: Schema.String })
{
  override get message() {
    return `invalid adapter pool configuration: ${this.reason}`
  }
}

export class AdapterTooLarge extends Schema.TaggedError<AdapterTooLarge>()("AdapterTooLarge", {
  key: Schema.String,
  bytes: Schema.Number,
  memoryBudgetBytes: Schema.Number
}) {
  override get message() {
    return `adapter ${this.key} needs ${this.bytes} bytes, more than the pool's whole memory budget of ${this.memoryBudgetBytes} bytes`
  }
}

/** A load that only fits by evicting pinned adapters. */
export class PinnedAdaptersFillPool extends Schema.TaggedError<PinnedAdaptersFillPool>()("PinnedAdaptersFillPool", {
  key: Schema.String,
  bytes: Schema.Number,
  limit: Schema.Literal("slots", "memory"),
  pinned: Schema.Number,
  capacity: Schema.Number
}) {
  override get message() {
    return this.limit === "slots"
      ? `cannot load ${this.key}: pinned adapters fill all ${this.capacity} slots; unpin one first`
      : `cannot load ${this.key} (${this.bytes} bytes): pinned adapters hold ${this.pinned} of the ${this.capacity}-byte budget; unpin some first`
  }
}

/** A lower limit that the pinned adapters alone already exceed. */
export class PinnedAdaptersExceedLimit
  extends Schema.TaggedError<PinnedAdaptersExceedLimit>()("PinnedAdaptersExceedLimit", {
    limit: Schema.Literal("slots", "memory"),
    requested: Schema.Number,
    pinned: Schema.Number
  })
{
  override get message() {
    return this.limit === "slots"
      ? `cannot lower the pool to ${this.requested} slots: ${this.pinned} adapters are pinned; unpin some first`
      : `cannot lower the memory budget to ${this.requested} bytes: pinned adapters hold ${this.pinned} bytes; unpin some first`
  }
}

export class AdapterNotResident
  extends Schema.TaggedError<AdapterNotResident>()("AdapterNotResident", { key: Schema.String })
{
  override get message() {
    return `adapter ${this.key} is not resident in the pool`
  }
}

export class AdapterIsPinned extends Schema.TaggedError<AdapterIsPinned>()("AdapterIsPinned", { key: Schema.String }) {
  override get message() {
    return `adapter ${this.key} is pinned: unpin it before unloading it`
  }
}

export class NoAdapterForTask extends Schema.TaggedError<NoAdapterForTask>()("NoAdapterForTask", {}) {
  override get message() {
    return "no resident adapter has a task embedding to compare with"
  }
}

export const AdapterPoolError = Schema.Union(
  InvalidAdapter,
  InvalidEmbedding,
  EmbeddingDimensionMismatch,
  InvalidPoolConfig,
  AdapterTooLarge,
  PinnedAdaptersFillPool,
  PinnedAdaptersExceedLimit,
  AdapterNotResident,
  AdapterIsPinned,
  NoAdapterForTask
)
export type AdapterPoolError = typeof AdapterPoolError.Type

const initialState: AdapterPoolState = {
  maxSlots: MAX_SLOTS,
  memoryBudgetBytes: DEFAULT_MEMORY_BUDGET_BYTES,
  clock: 0,
  residents: {}
}

export const residentKeys = (state: AdapterPoolState): ReadonlyArray<string> => Object.keys(state.residents)
export const usedBytes = (state: AdapterPoolState): number =>
  Object.values(state.residents).reduce((sum, resident) => sum + resident.bytes, 0)
const pinnedResidents = (state: AdapterPoolState) =>
  Object.values(state.residents).filter((resident) => resident.pinned)

/** Unpinned residents, least recently used first: the order eviction takes them in. */
export const evictionOrder = (state: AdapterPoolState): ReadonlyArray<string> =>
  Object.entries(state.residents)
    .filter(([, resident]) => !resident.pinned)
    .sort(([a, left], [b, right]) => left.lastUsed - right.lastUsed || (a < b ? -1 : a > b ? 1 : 0))
    .map(([key]) => key)

/** The vector scaled to length 1, or why it cannot be. */
export const normalizeEmbedding = (
  embedding: ReadonlyArray<number>
): Either.Either<ReadonlyArray<number>, InvalidEmbedding> => {
  if (embedding.length === 0) return Either.left(new InvalidEmbedding({ reason: "it is empty" }))
  if (!embedding.every(Number.isFinite)) {
    return Either.left(new InvalidEmbedding({ reason: "it holds a value that is not a finite number" }))
  }
  const norm = Math.sqrt(embedding.reduce((sum, value) => sum + value * value, 0))
  if (!(norm > 0) || !Number.isFinite(norm)) {
    return Either.left(new InvalidEmbedding({ reason: "its length is zero (or overflows)" }))
  }
  return Either.right(embedding.map((value) => value / norm))
}

/** The dimension of the resident embeddings (all residents share one), or undefined when none has one. */
export const poolDimensions = (state: AdapterPoolState): number | undefined =>
  Object.values(state.residents).find((resident) => resident.embedding !== null)?.embedding?.length

export interface AdapterMatch {
  readonly key: string
  /** Cosine similarity with the query, in -1..1. */
  readonly similarity: number
}

/**
 * The `k` residents whose task embedding is nearest the query by cosine similarity, best first (ties go
 * to the smaller key); residents without an embedding are not candidates.
 */
export const nearestAdapter = (
  state: AdapterPoolState,
  queryEmbedding: ReadonlyArray<number>,
  k = 1
): Either.Either<ReadonlyArray<AdapterMatch>, InvalidEmbedding | EmbeddingDimensionMismatch> =>
  Either.flatMap(normalizeEmbedding(queryEmbedding), (query) => {
    const expected = poolDimensions(state)
    if (expected !== undefined && expected !== query.length) {
      return Either.left(new EmbeddingDimensionMismatch({ expected, actual: query.length }))
    }
    const matches: Array<AdapterMatch> = []
    for (const [key, resident] of Object.entries(state.residents)) {
      if (resident.embedding === null) continue
      // Both vectors are unit length, so the dot product is the cosine.
      let similarity = 0
      for (let i = 0; i < query.length; i++) similarity += query[i]! * resident.embedding[i]!
      matches.push({ key, similarity })
    }
    matches.sort((a, b) => b.similarity - a.similarity || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    return Either.right(matches.slice(0, Math.max(0, k)))
  })

const isPositiveInteger = (value: number) => Number.isSafeInteger(value) && value > 0

const resident = (state: AdapterPoolState, key: string) =>
  Object.hasOwn(state.residents, key)
    ? Effect.succeed(state.residents[key]!)
    : Effect.fail(new AdapterNotResident({ key }))

/** Evictions, least recently used unpinned first, until `fits` holds; the caller checked that it can. */
const evictUntil = (
  state: AdapterPoolState,
  fits: (slots: number, bytes: number) => boolean,
  reasonFor: (slots: number, bytes: number) => EvictionReason
) => {
  const evictions: Array<typeof AdapterEvicted.Type> = []
  let slots = residentKeys(state).length
  let bytes = usedBytes(state)
  for (const key of evictionOrder(state)) {
    if (fits(slots, bytes)) break
    const victim = state.residents[key]!
    evictions.push(AdapterEvicted.make({ key, bytes: victim.bytes, reason: reasonFor(slots, bytes) }))
    slots -= 1
    bytes -= victim.bytes
  }
  return evictions
}

const decideLoad = (
  command: AdapterToLoad,
  state: AdapterPoolState
): Effect.Effect<ReadonlyArray<AdapterPoolEvent>, AdapterPoolError> => {
  const key = adapterKey(command.adapterId, command.version)
  if (command.adapterId === "" || command.version === "") {
    return Effect.fail(new InvalidAdapter({ key, reason: "it needs an id and a version" }))
  }
  // Keys split at their last `@`, so an id may hold one and a version may not.
  if (command.version.includes("@")) {
    return Effect.fail(new InvalidAdapter({ key, reason: "a version cannot contain @" }))
  }
  if (!isPositiveInteger(command.bytes)) {
    return Effect.fail(new InvalidAdapter({ key, reason: `bytes must be a positive integer, got ${command.bytes}` }))
  }
  const pin = command.pin === true
  if (Object.hasOwn(state.residents, key)) {
    // Already resident: the same version is the same adapter, so loading it again is a use.
    const current = state.residents[key]!
    return Effect.succeed([AdapterUsed.make({ key }), ...(pin && !current.pinned ? [AdapterPinned.make({ key })] : [])])
  }
  return Effect.gen(function*() {
    const embedding = command.embedding === undefined ? null : yield* normalizeEmbedding(command.embedding)
    const expected = poolDimensions(state)
    if (embedding !== null && expected !== undefined && embedding.length !== expected) {
      return yield* Effect.fail(new EmbeddingDimensionMismatch({ expected, actual: embedding.length }))
    }
    const { maxSlots, memoryBudgetBytes } = state
    if (command.bytes > memoryBudgetBytes) {
      return yield* Effect.fail(new AdapterTooLarge({ key, bytes: command.bytes, memoryBudgetBytes }))
    }
    const pinned = pinnedResidents(state)
    if (pinned.length + 1 > maxSlots) {
      return yield* Effect.fail(
        new PinnedAdaptersFillPool({
          key,
          bytes: command.bytes,
          limit: "slots",
          pinned: pinned.length,
          capacity: maxSlots
        })
      )
    }
    const pinnedBytes = pinned.reduce((sum, adapter) => sum + adapter.bytes, 0)
    if (pinnedBytes + command.bytes > memoryBudgetBytes) {
      return yield* Effect.fail(
        new PinnedAdaptersFillPool({
          key,
          bytes: command.bytes,
          limit: "memory",
          pinned: pinnedBytes,
          capacity: memoryBudgetBytes
        })
      )
    }
    const evictions = evictUntil(
      state,
      (slots, bytes) => slots + 1 <= maxSlots && bytes + command.bytes <= memoryBudgetBytes,
      (slots) => (slots + 1 > maxSlots ? "slots" : "memory")
    )
    const loaded = AdapterLoaded.make({
      key,
      adapterId: command.adapterId,
      version: command.version,
      bytes: command.bytes,
      embedding,
      pinned: pin
    })
    return [...evictions, loaded]
  })
}

const decideConfigure = (
  command: PoolLimits,
  state: AdapterPoolState
): Effect.Effect<ReadonlyArray<AdapterPoolEvent>, AdapterPoolError> => {
  const maxSlots = command.maxSlots ?? state.maxSlots
  const memoryBudgetBytes = command.memoryBudgetBytes ?? state.memoryBudgetBytes
  if (!Number.isSafeInteger(maxSlots) || maxSlots < 1 || maxSlots > MAX_SLOTS) {
    return Effect.fail(
      new InvalidPoolConfig({ reason: `maxSlots must be an integer from 1 to ${MAX_SLOTS}, got ${maxSlots}` })
    )
  }
  if (!isPositiveInteger(memoryBudgetBytes)) {
    return Effect.fail(
      new InvalidPoolConfig({ reason: `memoryBudgetBytes must be a positive integer, got ${memoryBudgetBytes}` })
    )
  }
  if (maxSlots === state.maxSlots && memoryBudgetBytes === state.memoryBudgetBytes) return Effect.succeed([])
  const pinned = pinnedResidents(state)
  if (pinned.length > maxSlots) {
    return Effect.fail(new PinnedAdaptersExceedLimit({ limit: "slots", requested: maxSlots, pinned: pinned.length }))
  }
  const pinnedBytes = pinned.reduce((sum, adapter) => sum + adapter.bytes, 0)
  if (pinnedBytes > memoryBudgetBytes) {
    return Effect.fail(
      new PinnedAdaptersExceedLimit({ limit: "memory", requested: memoryBudgetBytes, pinned: pinnedBytes })
    )
  }
  // Evictions first, so the pool fits its limits after every event of the command.
  const evictions = evictUntil(
    state,
    (slots, bytes) => slots <= maxSlots && bytes <= memoryBudgetBytes,
    (slots) => (slots > maxSlots ? "slots-lowered" : "budget-lowered")
  )
  return Effect.succeed([...evictions, PoolConfigured.make({ maxSlots, memoryBudgetBytes })])
}

const decide = (
  command: AdapterPoolCommand,
  state: AdapterPoolState
): Effect.Effect<ReadonlyArray<AdapterPoolEvent>, AdapterPoolError> => {
  switch (command._tag) {
    case "Load":
      return decideLoad(command, state)
    case "Use":
      return Effect.as(resident(state, command.key), [AdapterUsed.make({ key: command.key })])
    case "Pin":
      return Effect.map(
        resident(state, command.key),
        (adapter) => (adapter.pinned ? [] : [AdapterPinned.make({ key: command.key })])
      )
    case "Unpin":
      return Effect.map(
        resident(state, command.key),
        (adapter) => (adapter.pinned ? [AdapterUnpinned.make({ key: command.key })] : [])
      )
    case "Unload":
      return Effect.flatMap(
        resident(state, command.key),
        (adapter) =>
          adapter.pinned
            ? Effect.fail(new AdapterIsPinned({ key: command.key }))
            : Effect.succeed([AdapterUnloaded.make({ key: command.key, bytes: adapter.bytes })])
      )
    case "Configure":
      return decideConfigure(command, state)
    case "Select":
      return Effect.flatMap(
        nearestAdapter(state, command.embedding, 1),
        ([best]) =>
          best === undefined
            ? Effect.fail(new NoAdapterForTask())
            : Effect.succeed([AdapterUsed.make({ key: best.key, similarity: best.similarity })])
      )
  }
}

const withoutResident = (state: AdapterPoolState, key: string): AdapterPoolState => {
  const { [key]: _removed, ...residents } = state.residents
  return { ...state, residents }
}

const updateResident = (state: AdapterPoolState, key: string, change: Partial<ResidentAdapter>): AdapterPoolState =>
  Object.hasOwn(state.residents, key)
    ? { ...state, residents: { ...state.residents, [key]: { ...state.residents[key]!, ...change } } }
    : state

const evolve = (state: AdapterPoolState, event: AdapterPoolEvent): AdapterPoolState => {
  switch (event._tag) {
    case "AdapterLoaded": {
      const clock = state.clock + 1
      const loaded: ResidentAdapter = {
        adapterId: event.adapterId,
        version: event.version,
        bytes: event.bytes,
        embedding: event.embedding,
        pinned: event.pinned,
        lastUsed: clock
      }
      return { ...state, clock, residents: { ...state.residents, [event.key]: loaded } }
    }
    case "AdapterUsed": {
      const clock = state.clock + 1
      return updateResident({ ...state, clock }, event.key, { lastUsed: clock })
    }
    case "AdapterPinned":
      return updateResident(state, event.key, { pinned: true })
    case "AdapterUnpinned":
      return updateResident(state, event.key, { pinned: false })
    case "AdapterEvicted":
    case "AdapterUnloaded":
      return withoutResident(state, event.key)
    case "PoolConfigured":
      return { ...state, maxSlots: event.maxSlots, memoryBudgetBytes: event.memoryBudgetBytes }
  }
}

export const AdapterPools: EventSourced<AdapterPoolCommand, AdapterPoolEvent, AdapterPoolState, AdapterPoolError> = {
  category: "AdapterPool",
  decider: { initialState, decide, evolve },
  event: AdapterPoolEvent,
  state: AdapterPoolState
}
