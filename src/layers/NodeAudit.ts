/**
 * The node's audit: verify the journal's chain and signed heads; rebuild every actor's state from the
 * log alone and compare it with the live state, the ledger's conservation of rUv, and each subsystem's
 * books against the ledger accounts it keeps its rUv in; explain one entity (auction, proposal, account).
 */
import { Effect, Schema } from "effect"
import * as crypto from "node:crypto"
import { TrainingJob } from "../actors/adapters/TrainingJob.js"
import { Account } from "../actors/economy/Account.js"
import { Ledger } from "../actors/economy/Ledger.js"
import { stakeAccount } from "../actors/economy/Stake.js"
import { Staking } from "../actors/economy/StakeService.js"
import { Proposal } from "../actors/governance/Proposal.js"
import { FederatedRound } from "../actors/learning/FederatedRound.js"
import { explainRound } from "../actors/learning/RoundExplain.js"
import { explainAuction } from "../actors/market/AuctionExplain.js"
import { Auctions } from "../actors/market/AuctionService.js"
import { POOL_ACCOUNT } from "../actors/market/ComputeAmm.js"
import { Market } from "../actors/market/MarketService.js"
import { escrowAccountOf, TaskAuction } from "../actors/market/TaskAuction.js"
import { OptimizerJob } from "../actors/optimizer/OptimizerJob.js"
import { NodeKey } from "../content/NodeKey.js"
import { makeStreamId, streamCategory } from "../domain/Ids.js"
import { ActorRegistry, type AuditFolds, type LogObserver } from "../events/ActorRegistry.js"
import { forEachRecord, startChainCheck, verifyChain } from "../events/Audit.js"
import type { Envelope, LoggedEvent } from "../events/Envelope.js"
import { Journal } from "../events/Journal.js"
import { type Snapshot, Snapshots } from "../events/Snapshots.js"
import { explainAccount, explainOptimizerJob, explainProposal, explainTrainingJob } from "./EntityExplain.js"
import { ChainHeadView } from "./NodeStatus.js"

const PAGE = 4096
// Events with their chain text are read in pages this size: a page stays in the young generation while
// it is checked and folded (1M events: 8.7 s in pages of 256, 10.2 s in pages of 1024).
const SCAN_PAGE = 256

/**
 * One subsystem's books against the ledger: `expected` is the rUv the subsystem says it keeps (the
 * pool's reserve, stakers' active + unbonding stake, open auctions' deposits), `actual` the balance of
 * the ledger accounts that should hold it. A book is one line; an account of it that disagrees gets a
 * line of its own, so drift between two stakers shows even when the totals agree.
 */
export const BookLine = Schema.Struct({
  book: Schema.String,
  expected: Schema.BigInt,
  actual: Schema.BigInt,
  ok: Schema.Boolean
})
export type BookLine = typeof BookLine.Type

export const ReplayReportView = Schema.Struct({
  ok: Schema.Boolean,
  head: ChainHeadView,
  /** SHA-256 over the actors' digests: the state the log replays to, comparable between nodes. */
  stateDigest: Schema.String,
  actors: Schema.Array(
    Schema.Struct({
      category: Schema.String,
      entities: Schema.Number,
      digest: Schema.String,
      mismatches: Schema.Array(
        Schema.Struct({ entityId: Schema.String, live: Schema.Unknown, replayed: Schema.Unknown })
      )
    })
  ),
  supply: Schema.Struct({
    minted: Schema.BigInt,
    available: Schema.BigInt,
    held: Schema.BigInt,
    inFlight: Schema.BigInt,
    burned: Schema.BigInt,
    conserved: Schema.Boolean
  }),
  books: Schema.Array(BookLine),
  /** Stream categories in the log that no actor of the node replays: events nobody audits. */
  unreplayed: Schema.Array(Schema.Struct({ category: Schema.String, events: Schema.Number }))
})
export type ReplayReportView = typeof ReplayReportView.Type

export const ExplainKind = Schema.Literal(
  "auction",
  "proposal",
  "account",
  "optimizer-job",
  "training-job",
  "round"
)
export type ExplainKind = typeof ExplainKind.Type

export const ExplainView = Schema.Struct({
  kind: ExplainKind,
  id: Schema.String,
  streamId: Schema.String,
  events: Schema.Array(Schema.Struct({
    position: Schema.Number,
    streamVersion: Schema.Number,
    hash: Schema.String,
    eventType: Schema.String,
    recordedAt: Schema.String,
    commandId: Schema.NullOr(Schema.String),
    causationId: Schema.NullOr(Schema.String),
    payload: Schema.Unknown
  })),
  /** One paragraph: why the entity is in the state it is in, from its events alone. */
  why: Schema.String,
  /** The facts the paragraph states, as JSON (amounts as decimal strings). */
  facts: Schema.Unknown
})
export type ExplainView = typeof ExplainView.Type

export class EntityNotFound
  extends Schema.TaggedError<EntityNotFound>()("EntityNotFound", { kind: Schema.String, id: Schema.String })
{
  override get message() {
    return `no ${this.kind} ${this.id} in the journal`
  }
}

/** What `audit replay` reports: every actor replayed, the rUv supply, and the books. */
export type ReplayReport = ReplayReportView

const STAKE_PREFIX = stakeAccount("")
const ESCROW_PREFIX = escrowAccountOf("")

/**
 * A book kept in many accounts (one per staker, one per auction): a line for the whole, then a line
 * for each account that disagrees, including accounts under the book's prefix that the subsystem
 * does not know (their rUv is owed to nobody).
 */
const bookOf = (
  book: string,
  expectedByAccount: ReadonlyMap<string, bigint>,
  balances: ReadonlyMap<string, bigint>,
  prefix: string
) => {
  const accounts = new Set(expectedByAccount.keys())
  for (const account of balances.keys()) if (account.startsWith(prefix)) accounts.add(account)
  let expected = 0n
  let actual = 0n
  const mismatches: Array<BookLine> = []
  for (const account of [...accounts].sort()) {
    const owed = expectedByAccount.get(account) ?? 0n
    const held = balances.get(account) ?? 0n
    expected += owed
    actual += held
    if (owed !== held) mismatches.push({ book: account, expected: owed, actual: held, ok: false })
  }
  return [{ book, expected, actual, ok: mismatches.length === 0 }, ...mismatches]
}

const categoryOf: Record<ExplainKind, string> = {
  auction: TaskAuction.category,
  proposal: Proposal.category,
  account: Account.category,
  "optimizer-job": OptimizerJob.category,
  "training-job": TrainingJob.category,
  round: FederatedRound.category
}

export class NodeAudit extends Effect.Service<NodeAudit>()("edge-net/NodeAudit", {
  effect: Effect.gen(function*() {
    const journal = yield* Journal
    const key = yield* NodeKey
    const snapshots = yield* Snapshots
    // Every actor the node made registered itself here: the audit replays them all, not a list kept by hand.
    const registry = yield* ActorRegistry
    const ledger = yield* Ledger
    const market = yield* Market
    const staking = yield* Staking
    const auctions = yield* Auctions

    const verify = Effect.fn("NodeAudit.verify")(function*() {
      // With Snapshots in context, verifyChain also reports snapshots that loading would ignore.
      return yield* verifyChain({ trustedKeys: [key.publicKey] }).pipe(
        Effect.provideService(Journal, journal),
        Effect.provideService(Snapshots, snapshots)
      )
    })

    /**
     * The pool, stake and escrow books, each folded from the log, against the ledger accounts folded
     * from the log: from `folds` when a shared read of the log has folded them, else each read now.
     * Read while a settlement is under way (a capture not yet credited, a withdrawal not yet paid), a
     * book can differ until the settlement policies finish it.
     */
    const books = Effect.fn("NodeAudit.books")(function*(folds?: AuditFolds) {
      const balances = yield* ledger.balancesFromLog(folds)
      const poolLine = {
        book: POOL_ACCOUNT,
        expected: yield* market.reserveFromLog(folds),
        actual: balances.get(POOL_ACCOUNT) ?? 0n
      }
      return [
        { ...poolLine, ok: poolLine.expected === poolLine.actual },
        ...bookOf("stake", yield* staking.stakeAccountsFromLog(folds), balances, STAKE_PREFIX),
        ...bookOf("escrow", yield* auctions.escrowAccountsFromLog(folds), balances, ESCROW_PREFIX)
      ] satisfies ReadonlyArray<BookLine>
    })

    /** Every snapshot the node sealed, by stream id: what loading an entity would start from. */
    const sealedSnapshots = Effect.gen(function*() {
      const sealed = new Map<string, Snapshot>()
      let after = ""
      while (true) {
        const page = yield* snapshots.stored(after, PAGE)
        for (const { sealed: isSealed, snapshot, streamId } of page) if (isSealed) sealed.set(streamId, snapshot)
        if (page.length < PAGE) return sealed as ReadonlyMap<string, Snapshot>
        after = page[page.length - 1]!.streamId
      }
    })

    /**
     * Every actor rebuilt from ONE read of the log up to its head, with the ledger's flows counted and
     * the events of each category counted in the same read, so categories no actor replays show. Each
     * stored payload is parsed once and handed to every fold of its category; each actor's fold decodes
     * it with its event Schema (compiled once per actor) before its decider's evolve, so replay runs the
     * same code as the live actor. The books and the supply are then read off the same folds.
     * The full decode stays, though the hash chain vouches for the stored bytes: it vouches that the
     * node wrote them, not that they are events its deciders could have decided, and a replayer who
     * trusts no node (`audit replay --feed`) must refuse an amount that is not one. Decoding is about a
     * quarter of replay (1M events: ~1.5 s of ~6 s); the ledger's flow count alone reads the parsed
     * JSON as stored, since it only sums amounts the Account fold has just decoded.
     */
    const replayActors = Effect.fn("NodeAudit.replayActors")(function*(
      upToPosition: number,
      // How the log is read (by default its folded columns, up to `upToPosition`): each record handed on.
      scan: (onRecord: (record: LoggedEvent) => void) => Effect.Effect<void> = (onRecord) =>
        forEachRecord(journal, onRecord, upToPosition)
    ) {
      const registered = yield* registry.actors
      const stored = yield* sealedSnapshots
      const folds = new Map(registered.map((actor) => [actor.category, actor.startFold(stored)]))
      const supplyCount = ledger.startSupplyCount()
      const observers: ReadonlyArray<LogObserver> = [supplyCount.observer]
      const steps = new Map<string, Array<LogObserver["step"]>>()
      for (const [category, fold] of folds) steps.set(category, [fold.step])
      for (const observer of observers) {
        const forCategory = steps.get(observer.category)
        if (forCategory === undefined) steps.set(observer.category, [observer.step])
        else forCategory.push(observer.step)
      }
      const counts = new Map<string, number>()
      yield* scan((record) => {
        const category = streamCategory(record.streamId)
        const forCategory = steps.get(category)
        if (forCategory === undefined) {
          counts.set(category, (counts.get(category) ?? 0) + 1)
          return
        }
        const payload: unknown = JSON.parse(record.payloadText)
        for (const step of forCategory) step(record, payload)
      })
      const actors = yield* Effect.forEach(registered, (actor) => folds.get(actor.category)!.compare)
      // Counted only for categories no actor folds (an observer alone does not replay a category).
      const unreplayed = [...counts].filter(([category]) => !folds.has(category)).map(([category, events]) => ({
        category,
        events
      }))
      return { actors, unreplayed, supply: yield* supplyCount.supply(folds), books: yield* books(folds) }
    })

    const replayReport = (
      head: ReplayReport["head"],
      { actors, books: reconciled, supply, unreplayed }: Effect.Effect.Success<ReturnType<typeof replayActors>>
    ): ReplayReport => ({
      ok: actors.every((actor) => actor.mismatches.length === 0) && unreplayed.length === 0 && supply.conserved &&
        reconciled.every((line) => line.ok),
      head,
      stateDigest: crypto.createHash("sha256").update(
        actors.map((actor) => `${actor.category}:${actor.digest}`).join("\n")
      ).digest("hex"),
      actors,
      supply,
      books: reconciled,
      unreplayed
    })

    /** Every actor of the node rebuilt from the log and compared, the ledger's supply, and the books. */
    const replay = Effect.fn("NodeAudit.replay")(function*() {
      const head = yield* journal.head
      return replayReport(head, yield* replayActors(head.position))
    })

    /**
     * verify and replay from ONE read of the log (journal.readLoggedLinks): each stored event is checked
     * against the chain (the text its hash covers, as the store assembles it) and handed to the folds.
     * The chain is checked to the end of the log, the folds stop at the head read first. 1M events:
     * 8.7 to 9.2 s, against 5.8 + 4.4 s for replay and verify apart (same machine, load 3); one read
     * of both costs 2.5 s where the two cost 3.6 s. Pages of 256: a page of whole links is large.
     * Rebuilding the hashed text in JavaScript from whole records was slower than the two apart (12.1 s).
     */
    const replayAndVerify = Effect.fn("NodeAudit.replayAndVerify")(function*() {
      const head = yield* journal.head
      const chain = yield* startChainCheck({ trustedKeys: [key.publicKey] }).pipe(
        Effect.provideService(Journal, journal)
      )
      let problem: string | null = null
      const replayed = yield* replayActors(head.position, (onRecord) =>
        Effect.gen(function*() {
          let position = 1
          while (true) {
            const page = yield* journal.readLoggedLinks(position, SCAN_PAGE)
            if (page.length > 0) yield* chain.headsUpTo(page[page.length - 1]!.position)
            for (const record of page) {
              if (problem === null) problem = chain.walk.check(record)
              if (record.position <= head.position) onRecord(record)
            }
            if (page.length < SCAN_PAGE || (problem !== null && position > head.position)) return
            position = page[page.length - 1]!.position + 1
          }
        }))
      const verified = yield* chain.finish(problem).pipe(
        Effect.provideService(Journal, journal),
        Effect.provideService(Snapshots, snapshots)
      )
      return { chain: verified, replay: replayReport(head, replayed) }
    })

    /** One entity's events in log order with position and hash, and why it stands where it does. */
    const explain = Effect.fn("NodeAudit.explain")(function*(kind: ExplainKind, id: string) {
      const streamId = makeStreamId(categoryOf[kind], id)
      const events: Array<Envelope> = []
      while (true) {
        const page = yield* journal.readStream(streamId, events.length + 1, PAGE)
        for (const item of page) events.push(item)
        if (page.length < PAGE) break
      }
      if (events.length === 0) return yield* Effect.fail(new EntityNotFound({ kind, id }))
      const payloads = events.map((envelope) => envelope.payload)
      const { facts, why } = kind === "auction"
        ? explainAuction(id, payloads)
        : kind === "proposal"
        ? explainProposal(id, payloads)
        : kind === "optimizer-job"
        ? explainOptimizerJob(id, payloads)
        : kind === "training-job"
        ? explainTrainingJob(id, payloads)
        : kind === "round"
        ? explainRound(id, payloads)
        : explainAccount(id, events)
      return {
        kind,
        id,
        streamId,
        why,
        facts: JSON.parse(
          JSON.stringify(facts, (_key, value) => (typeof value === "bigint" ? value.toString() : value))
        ),
        events: events.map((
          { causationId, commandId, eventType, hash, payload, position, recordedAt, streamVersion }
        ) => ({
          position,
          streamVersion,
          hash,
          eventType,
          recordedAt,
          commandId,
          causationId,
          payload
        }))
      } satisfies ExplainView
    })

    return { verify, replay, replayAndVerify, books, explain } as const
  })
}) {}
