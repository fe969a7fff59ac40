/**
 * Tamper evidence and replay: walk the hash chain and the signed heads and report the first position
 * where the log stops being what its writers signed; rebuild state from the log and compare it with
 * what the live actors hold.
 */
import { Effect, Option, Schema } from "effect"
import * as crypto from "node:crypto"
import { verifySignature } from "../content/NodeKey.js"
import { canonicalize } from "../domain/CanonicalJson.js"
import { envelopeHash, GENESIS_HASH, headMessage, type StoredRecord } from "./Envelope.js"
import { Journal } from "./Journal.js"
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

export const verifyChain = (options: VerifyOptions = {}) =>
  Effect.gen(function*() {
    const journal = yield* Journal
    // Read before the log: a head recorded by a commit that lands meanwhile is still within what we read.
    const recorded = yield* journal.recordedHead
    const recordedPosition = recorded._tag === "Recorded" ? recorded.head.position : 0
    let hashAtRecorded: string | undefined
    const trusted = new Set(options.trustedKeys ?? [])
    const signers = new Set<string>()
    let expected = 1
    let prevHash = GENESIS_HASH
    let headsChecked = 0
    let heads = yield* journal.signedHeads(1, PAGE)
    let headIndex = 0
    let lastHeadPosition = 0
    const report = (position: number | null, problem: string | null): ChainReport => ({
      ok: problem === null,
      eventsChecked: expected - 1,
      headsChecked,
      head: { position: expected - 1, hash: prevHash },
      firstBadPosition: position,
      problem,
      signers: [...signers]
    })

    // Checks every signed head at or below `position`, given the chain hash at `position`.
    const checkHeadsUpTo = (position: number, hash: string) =>
      Effect.gen(function*() {
        while (true) {
          if (headIndex >= heads.length) {
            if (heads.length < PAGE) return null
            heads = yield* journal.signedHeads(heads[heads.length - 1]!.position + 1, PAGE)
            headIndex = 0
            continue
          }
          const head = heads[headIndex]!
          if (head.position > position) return null
          if (head.position === position && head.hash !== hash) {
            return `signed head at ${head.position} does not match the chain`
          }
          if (!verifySignature(head.publicKey, headMessage(head.position, head.hash), head.signature)) {
            return `bad signature on the head at ${head.position}`
          }
          if (trusted.size > 0 && !trusted.has(head.publicKey)) {
            return `head at ${head.position} signed by an untrusted key ${head.publicKey}`
          }
          signers.add(head.publicKey)
          lastHeadPosition = head.position
          headsChecked++
          headIndex++
        }
      })

    while (true) {
      // The stored text is hashed as it is: it is what was written, and what the hash and heads cover.
      const page = yield* journal.readRecords(expected, PAGE)
      for (const record of page) {
        if (record.position !== expected) {
          return report(expected, `event ${expected} is missing (next is ${record.position})`)
        }
        if (record.prevHash !== prevHash) {
          return report(expected, `event ${expected} does not link to the event before it`)
        }
        if (envelopeHash(record) !== record.hash) {
          return report(expected, `event ${expected} was altered (hash mismatch)`)
        }
        if (headIndex < heads.length || heads.length === PAGE) {
          const headProblem = yield* checkHeadsUpTo(expected, record.hash)
          if (headProblem !== null) {
            return report(expected, headProblem)
          }
        }
        prevHash = record.hash
        if (record.position === recordedPosition) hashAtRecorded = record.hash
        expected++
      }
      if (page.length < PAGE) break
    }
    const last = expected - 1
    // Whatever heads remain claim positions past the end of the log: events were cut off the end.
    const remaining = headIndex < heads.length ? heads[headIndex] : (yield* journal.signedHeads(last + 1, 1))[0]
    if (remaining !== undefined) {
      return report(last + 1, `the log ends at ${last} but a signed head covers ${remaining.position}`)
    }
    if (last > lastHeadPosition) {
      return report(lastHeadPosition + 1, `events ${lastHeadPosition + 1}..${last} are not covered by a signed head`)
    }
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
      if (head.position > 0 && hashAtRecorded !== head.hash) {
        return report(
          head.position,
          `journal rewritten: head file says position ${head.position} has hash ${head.hash}, database has ${hashAtRecorded}`
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

const RECORD_PAGE = 4096

/**
 * Reads the log's stored records once, in order, up to `upToPosition`, and hands each to `onRecord`:
 * one read of the log that any number of folds can share.
 */
export const forEachRecord = (
  journal: Journal["Type"],
  onRecord: (record: StoredRecord) => void,
  upToPosition = Number.MAX_SAFE_INTEGER
) =>
  Effect.gen(function*() {
    let position = 1
    while (position <= upToPosition) {
      const page = yield* journal.readRecords(position, RECORD_PAGE)
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
  readonly state: (entityId: string) => Effect.Effect<{ readonly state: S; readonly version: number }>
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
      const live = yield* actor.state(entityId)
      const fresh = live.version === fromLog.version ? fromLog : yield* actor.replayEntity(entityId, live.version)
      const liveEncoded = actor.encodeState(live.state)
      const freshEncoded = actor.encodeState(fresh.state)
      digest.update(
        `${JSON.stringify(entityId)}\n${fromLog.version}\n${canonicalize(actor.encodeState(fromLog.state))}\n`
      )
      if (live.version !== fresh.version || canonicalize(liveEncoded) !== canonicalize(freshEncoded)) {
        mismatches.push({
          entityId,
          live: { version: live.version, state: liveEncoded },
          replayed: { version: fresh.version, state: freshEncoded }
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
