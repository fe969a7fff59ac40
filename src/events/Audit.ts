/**
 * Tamper evidence and replay: walk the hash chain and the signed heads and report the first position
 * where the log stops being what its writers signed; rebuild state from the log and compare it with
 * what the live actors hold.
 */
import { Effect, Option, Schema } from "effect"
import * as crypto from "node:crypto"
import { verifySignature } from "../content/NodeKey.js"
import { canonicalize } from "../domain/CanonicalJson.js"
import { type ChainLink, GENESIS_HASH, headMessage, type LoggedEvent } from "./Envelope.js"
import { Journal, type SignedHead } from "./Journal.js"
import { Snapshots } from "./Snapshots.js"

export interface ChainReport {
  readonly ok: boolean
  readonly eventsChecked: number
  readonly headsChecked: number
  readonly head: { readonly position: number; readonly hash: string }
  /** The first position whose event or signed head is not what was written, when `ok` is false. */
  readonly firstBadPosition: number | null
  readonly problem: string | null
  readonly signers: ReadonlyArray<string>
}

export interface VerifyOptions {
  /** Public keys (hex) whose head signatures are accepted; empty accepts any valid signature. */
  readonly trustedKeys?: ReadonlyArray<string>
  /** Also report snapshots that loading would ignore, when Snapshots is in the context (default true). */
  readonly checkSnapshots?: boolean
}

const PAGE = 4096
// Records are read for verification in pages this size: a page is alive while it is hashed, and smaller
// pages keep it in the young generation (1M events: 2.0 s read in pages of 1024, 2.3 s in pages of 4096).
const VERIFY_PAGE = 1024

/**
 * The hash chain and its signed heads, walked one stored record at a time with no effect per record:
 * `check` answers the first problem of a record (or null), given every signed head up to it.
 */
export class ChainWalk {
  expected = 1
  prevHash = GENESIS_HASH
  headsChecked = 0
  lastHeadPosition = 0
  hashAtRecorded: string | undefined
  readonly signers = new Set<string>()
  private readonly trusted: ReadonlySet<string>
  private heads: Array<SignedHead> = []
  private headIndex = 0

  constructor(trustedKeys: ReadonlyArray<string>, private readonly recordedPosition: number) {
    this.trusted = new Set(trustedKeys)
  }

  /** The position of the last head handed in, 0 before any. */
  get headsUpTo(): number {
    return this.heads.length === 0 ? 0 : this.heads[this.heads.length - 1]!.position
  }

  /** Hands in the next signed heads, in position order. */
  addHeads(heads: ReadonlyArray<SignedHead>) {
    if (this.headIndex > 0) {
      this.heads = this.heads.slice(this.headIndex)
      this.headIndex = 0
    }
    for (const head of heads) this.heads.push(head)
  }

  /** The first head not yet checked, if any: after the last record, a head past the end of the log. */
  get nextHead(): SignedHead | undefined {
    return this.heads[this.headIndex]
  }

  check(record: ChainLink): string | null {
    const expected = this.expected
    if (record.position !== expected) return `event ${expected} is missing (next is ${record.position})`
    if (record.prevHash !== this.prevHash) return `event ${expected} does not link to the event before it`
    // The stored text is hashed as it is: it is what was written, and what the hash and heads cover.
    if (crypto.hash("sha256", record.hashedText, "hex") !== record.hash) {
      return `event ${expected} was altered (hash mismatch)`
    }
    while (this.headIndex < this.heads.length) {
      const head = this.heads[this.headIndex]!
      if (head.position > expected) break
      const problem = this.checkHead(head, record.hash)
      if (problem !== null) return problem
      this.headIndex++
    }
    this.prevHash = record.hash
    if (expected === this.recordedPosition) this.hashAtRecorded = record.hash
    this.expected++
    return null
  }

  // A head at or below the record just hashed; `hash` is the chain's hash at the record.
  private checkHead(head: SignedHead, hash: string): string | null {
    if (head.position === this.expected && head.hash !== hash) {
      return `signed head at ${head.position} does not match the chain`
    }
    if (!verifySignature(head.publicKey, headMessage(head.position, head.hash), head.signature)) {
      return `bad signature on the head at ${head.position}`
    }
    if (this.trusted.size > 0 && !this.trusted.has(head.publicKey)) {
      return `head at ${head.position} signed by an untrusted key ${head.publicKey}`
    }
    this.signers.add(head.publicKey)
    this.lastHeadPosition = head.position
    this.headsChecked++
    return null
  }
}

/**
 * Reads the signed heads up to `position` into `walk` (and the page after, if the page ends below it):
 * a record's heads are in hand before the record is checked.
 */
const readHeadsUpTo = (journal: Journal["Type"], walk: ChainWalk, position: number, state: { exhausted: boolean }) =>
  Effect.gen(function*() {
    while (!state.exhausted && walk.headsUpTo <= position) {
      const heads = yield* journal.signedHeads(walk.headsUpTo + 1, PAGE)
      walk.addHeads(heads)
      if (heads.length < PAGE) state.exhausted = true
    }
  })

/**
 * verifyChain in three steps, for a caller that reads the log itself (NodeAudit.replayAndVerify folds
 * the same records it checks): start, then for each page `headsUpTo` its last position before `walk`
 * checks its records, then `finish` with the first problem found (or null) for the report.
 */
export const startChainCheck = (options: VerifyOptions = {}) =>
  Effect.gen(function*() {
    const journal = yield* Journal
    // Read before the log: a head recorded by a commit that lands meanwhile is still within what we read.
    const recorded = yield* journal.recordedHead
    const walk = new ChainWalk(
      options.trustedKeys ?? [],
      recorded._tag === "Recorded" ? recorded.head.position : 0
    )
    const heads = { exhausted: false }
    const report = (position: number | null, problem: string | null): ChainReport => ({
      ok: problem === null,
      eventsChecked: walk.expected - 1,
      headsChecked: walk.headsChecked,
      head: { position: walk.expected - 1, hash: walk.prevHash },
      firstBadPosition: position,
      problem,
      signers: [...walk.signers]
    })
    const finish = (found: string | null): Effect.Effect<ChainReport, never, Journal> =>
      found !== null ? Effect.succeed(report(walk.expected, found)) : Effect.gen(function*() {
        const last = walk.expected - 1
        // Whatever heads remain claim positions past the end of the log: events were cut off the end.
        const remaining = walk.nextHead ?? (yield* journal.signedHeads(last + 1, 1))[0]
        if (remaining !== undefined) {
          return report(last + 1, `the log ends at ${last} but a signed head covers ${remaining.position}`)
        }
        if (last > walk.lastHeadPosition) {
          return report(
            walk.lastHeadPosition + 1,
            `events ${walk.lastHeadPosition + 1}..${last} are not covered by a signed head`
          )
        }
        const trusted = new Set(options.trustedKeys ?? [])
        if (recorded._tag === "Unreadable") {
          return report(null, `the head file cannot be read (${recorded.reason})`)
        }
        if (recorded._tag === "Recorded") {
          const { head } = recorded
          if (!verifySignature(head.publicKey, headMessage(head.position, head.hash), head.signature)) {
            return report(null, `the head file's signature does not verify (it says position ${head.position})`)
          }
          if (trusted.size > 0 && !trusted.has(head.publicKey)) {
            return report(null, `the head file is signed by an untrusted key ${head.publicKey}`)
          }
          if (last < head.position) {
            return report(
              last + 1,
              `journal truncated: head file says position ${head.position} (hash ${head.hash}), database ends at ${last}`
            )
          }
          if (head.position > 0 && walk.hashAtRecorded !== head.hash) {
            return report(
              head.position,
              `journal rewritten: head file says position ${head.position} has hash ${head.hash}, database has ${walk.hashAtRecorded}`
            )
          }
        }
        // Snapshots are checked when the caller's context has them (a node's audit does).
        const snapshots = yield* Effect.serviceOption(Snapshots)
        if (Option.isSome(snapshots) && (options.checkSnapshots ?? true)) {
          const bad = yield* findBadSnapshots(1).pipe(Effect.provideService(Snapshots, snapshots.value))
          const first = bad[0]
          if (first !== undefined) return report(first.position, first.problem)
        }
        return report(null, null)
      })
    return {
      walk,
      headsUpTo: (position: number) => readHeadsUpTo(journal, walk, position, heads),
      finish
    }
  })

export const verifyChain = (options: VerifyOptions = {}) =>
  Effect.gen(function*() {
    const journal = yield* Journal
    const { finish, headsUpTo, walk } = yield* startChainCheck(options)
    while (true) {
      const page = yield* journal.readChainLinks(walk.expected, VERIFY_PAGE)
      if (page.length > 0) yield* headsUpTo(page[page.length - 1]!.position)
      for (const record of page) {
        const problem = walk.check(record)
        if (problem !== null) return yield* finish(problem)
      }
      if (page.length < VERIFY_PAGE) break
    }
    return yield* finish(null)
  }).pipe(Effect.withSpan("Audit.verifyChain"))

export interface BadSnapshot {
  readonly streamId: string
  readonly version: number
  readonly position: number
  readonly problem: string
}

/**
 * Snapshots that loading would ignore: not sealed by the node, or naming an event the stream does not
 * have at that version. At most `limit` of them, in stream id order.
 */
export const findBadSnapshots = (limit = Number.MAX_SAFE_INTEGER) =>
  Effect.gen(function*() {
    const journal = yield* Journal
    const snapshots = yield* Snapshots
    const bad: Array<BadSnapshot> = []
    let after = ""
    while (bad.length < limit) {
      const page = yield* snapshots.stored(after, PAGE)
      for (const { sealed, snapshot, streamId } of page) {
        const where = `snapshot of ${streamId} at version ${snapshot.version}`
        const problem = !sealed
          ? `${where} is not sealed by this node (its state was edited): it is ignored and the state rebuilt from the journal`
          : yield* journal.readStream(streamId, snapshot.version, 1).pipe(
            Effect.map(([event]) =>
              event === undefined || event.streamVersion !== snapshot.version || event.position !== snapshot.position ||
                event.hash !== snapshot.eventHash
                ? `${where} does not match the journal's event there: it is ignored and the state rebuilt from the journal`
                : undefined
            )
          )
        if (problem !== undefined && bad.length < limit) {
          bad.push({ streamId, version: snapshot.version, position: snapshot.position, problem })
        }
      }
      if (page.length < PAGE) {
        break
      }
      after = page[page.length - 1]!.streamId
    }
    return bad as ReadonlyArray<BadSnapshot>
  }).pipe(Effect.withSpan("Audit.findBadSnapshots"))

export class JournalDoesNotVerify extends Schema.TaggedError<JournalDoesNotVerify>()("JournalDoesNotVerify", {
  file: Schema.String,
  position: Schema.NullOr(Schema.Number),
  problem: Schema.String
}) {
  override get message() {
    const where = this.position === null ? "" : ` at position ${this.position}`
    return `${this.file} does not verify${where} (${this.problem}); restore it from a follower or a backup, or run \`edge-net audit verify\` to see where`
  }
}

/**
 * Fails unless the journal's chain, signed heads and recorded head verify: a node must not extend a
 * log it cannot vouch for. Snapshots are not part of it (a bad one is ignored and only reported).
 */
export const requireVerifiedJournal = (file: string, options: VerifyOptions = {}) =>
  verifyChain({ ...options, checkSnapshots: false }).pipe(
    Effect.flatMap((report) =>
      report.ok
        ? Effect.succeed(report)
        : Effect.fail(
          new JournalDoesNotVerify({ file, position: report.firstBadPosition, problem: report.problem ?? "unknown" })
        )
    ),
    Effect.withSpan("Audit.requireVerifiedJournal")
  )

export interface ReplayReport {
  readonly category: string
  readonly entities: number
  /**
   * SHA-256 over every replayed entity (id, version, canonical state), in id order: two nodes that
   * replay the same log, one its own and one a follower's copy, get the same digest.
   */
  readonly digest: string
  readonly mismatches: ReadonlyArray<{ readonly entityId: string; readonly live: unknown; readonly replayed: unknown }>
}

// Pages this size stay in the young generation while they are folded (see VERIFY_PAGE).
const RECORD_PAGE = 1024

/**
 * Reads the log's stored records once, in order, up to `upToPosition`, and hands each to `onRecord`:
 * one read of the log that any number of folds can share.
 */
export const forEachRecord = (
  journal: Journal["Type"],
  onRecord: (record: LoggedEvent) => void,
  upToPosition = Number.MAX_SAFE_INTEGER
) =>
  Effect.gen(function*() {
    let position = 1
    while (position <= upToPosition) {
      const page = yield* journal.readLoggedEvents(position, RECORD_PAGE)
      for (const record of page) {
        if (record.position > upToPosition) return
        onRecord(record)
      }
      if (page.length < RECORD_PAGE) return
      position = page[page.length - 1]!.position + 1
    }
  })

interface ReplayedActor<S> {
  readonly category: string
  readonly replay: () => Effect.Effect<ReadonlyMap<string, { readonly state: S; readonly version: number }>>
  readonly replayEntity: (
    entityId: string,
    upToVersion: number
  ) => Effect.Effect<{ readonly state: S; readonly version: number }>
  /** What the live actor holds (or would hold once loaded) for the entity. */
  readonly liveState: (entityId: string) => Effect.Effect<{ readonly state: S; readonly version: number }>
  readonly encodeState: (state: S) => unknown
}

/**
 * Rebuilds every entity of an actor from the log alone and compares it with the live (cached,
 * snapshotted) state. On a busy node an entity may move between the two reads; it is then replayed
 * again up to exactly the live version, so only a real divergence is reported.
 */
export const compareReplay = <S>(actor: ReplayedActor<S>) =>
  Effect.flatMap(actor.replay(), (replayed) => compareReplayed(actor, replayed))

/** compareReplay on entities already folded from the log (by a read of the log that other folds shared). */
export const compareReplayed = <S>(
  actor: ReplayedActor<S>,
  replayed: ReadonlyMap<string, { readonly state: S; readonly version: number }>
) =>
  Effect.gen(function*() {
    const mismatches: Array<ReplayReport["mismatches"][number]> = []
    const digest = crypto.createHash("sha256")
    for (const entityId of [...replayed.keys()].sort()) {
      const fromLog = replayed.get(entityId)!
      const replayedText = canonicalize(actor.encodeState(fromLog.state))
      digest.update(`${JSON.stringify(entityId)}\n${fromLog.version}\n${replayedText}\n`)
      const live = yield* actor.liveState(entityId)
      const fresh = live.version === fromLog.version ? fromLog : yield* actor.replayEntity(entityId, live.version)
      const liveEncoded = actor.encodeState(live.state)
      const freshText = fresh === fromLog ? replayedText : canonicalize(actor.encodeState(fresh.state))
      if (live.version !== fresh.version || canonicalize(liveEncoded) !== freshText) {
        mismatches.push({
          entityId,
          live: { version: live.version, state: liveEncoded },
          replayed: { version: fresh.version, state: actor.encodeState(fresh.state) }
        })
      }
    }
    return {
      category: actor.category,
      entities: replayed.size,
      digest: digest.digest("hex"),
      mismatches
    } satisfies ReplayReport
  }).pipe(Effect.withSpan("Audit.compareReplay"))
