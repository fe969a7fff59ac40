/**
 * Tamper evidence and replay: walk the hash chain and the signed heads and report the first position
 * where the log stops being what its writers signed; rebuild state from the log and compare it with
 * what the live actors hold.
 */
import { Effect } from "effect"
import { canonicalize } from "../domain/CanonicalJson.js"
import { verifySignature } from "../content/NodeKey.js"
import { envelopeHash, GENESIS_HASH, headMessage } from "./Envelope.js"
import { Journal } from "./Journal.js"

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
}

const PAGE = 4096

export const verifyChain = (options: VerifyOptions = {}) =>
  Effect.gen(function* () {
    const journal = yield* Journal
    const trusted = new Set(options.trustedKeys ?? [])
    const signers = new Set<string>()
    let expected = 1
    let prevHash = GENESIS_HASH
    let headsChecked = 0
    let heads = yield* journal.signedHeads(1, PAGE)
    let headIndex = 0
    let lastHeadPosition = 0
    const report = (position: number | null, problem: string | null): ChainReport => ({
      ok: problem === null, eventsChecked: expected - 1, headsChecked, head: { position: expected - 1, hash: prevHash },
      firstBadPosition: position, problem, signers: [...signers]
    })

    // Checks every signed head at or below `position`, given the chain hash at `position`.
    const checkHeadsUpTo = (position: number, hash: string) =>
      Effect.gen(function* () {
        while (true) {
          if (headIndex >= heads.length) {
            if (heads.length < PAGE) return null
            heads = yield* journal.signedHeads(heads[heads.length - 1]!.position + 1, PAGE)
            headIndex = 0
            continue
          }
          const head = heads[headIndex]!
          if (head.position > position) return null
          if (head.position === position && head.hash !== hash) return `signed head at ${head.position} does not match the chain`
          if (!verifySignature(head.publicKey, headMessage(head.position, head.hash), head.signature)) {
            return `bad signature on the head at ${head.position}`
          }
          if (trusted.size > 0 && !trusted.has(head.publicKey)) return `head at ${head.position} signed by an untrusted key ${head.publicKey}`
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
        if (record.position !== expected) return report(expected, `event ${expected} is missing (next is ${record.position})`)
        if (record.prevHash !== prevHash) return report(expected, `event ${expected} does not link to the event before it`)
        if (envelopeHash(record) !== record.hash) return report(expected, `event ${expected} was altered (hash mismatch)`)
        if (headIndex < heads.length || heads.length === PAGE) {
          const headProblem = yield* checkHeadsUpTo(expected, record.hash)
          if (headProblem !== null) return report(expected, headProblem)
        }
        prevHash = record.hash
        expected++
      }
      if (page.length < PAGE) break
    }
    const last = expected - 1
    // Whatever heads remain claim positions past the end of the log: events were cut off the end.
    const remaining = headIndex < heads.length ? heads[headIndex] : (yield* journal.signedHeads(last + 1, 1))[0]
    if (remaining !== undefined) return report(last + 1, `the log ends at ${last} but a signed head covers ${remaining.position}`)
    if (last > lastHeadPosition) {
      return report(lastHeadPosition + 1, `events ${lastHeadPosition + 1}..${last} are not covered by a signed head`)
    }
    return report(null, null)
  }).pipe(Effect.withSpan("Audit.verifyChain"))

export interface ReplayReport {
  readonly category: string
  readonly entities: number
  readonly mismatches: ReadonlyArray<{ readonly entityId: string; readonly live: unknown; readonly replayed: unknown }>
}

/**
 * Rebuilds every entity of an actor from the log alone and compares it with the live (cached,
 * snapshotted) state. On a busy node an entity may move between the two reads; it is then replayed
 * again up to exactly the live version, so only a real divergence is reported.
 */
export const compareReplay = <S>(actor: {
  readonly category: string
  readonly replay: () => Effect.Effect<ReadonlyMap<string, { readonly state: S; readonly version: number }>>
  readonly replayEntity: (entityId: string, upToVersion: number) => Effect.Effect<{ readonly state: S; readonly version: number }>
  readonly state: (entityId: string) => Effect.Effect<{ readonly state: S; readonly version: number }>
  readonly encodeState: (state: S) => unknown
}) =>
  Effect.gen(function* () {
    const replayed = yield* actor.replay()
    const mismatches: Array<ReplayReport["mismatches"][number]> = []
    for (const [entityId, fromLog] of replayed) {
      const live = yield* actor.state(entityId)
      const fresh = live.version === fromLog.version ? fromLog : yield* actor.replayEntity(entityId, live.version)
      const liveEncoded = actor.encodeState(live.state)
      const freshEncoded = actor.encodeState(fresh.state)
      if (live.version !== fresh.version || canonicalize(liveEncoded) !== canonicalize(freshEncoded)) {
        mismatches.push({ entityId, live: { version: live.version, state: liveEncoded }, replayed: { version: fresh.version, state: freshEncoded } })
      }
    }
    return { category: actor.category, entities: replayed.size, mismatches } satisfies ReplayReport
  }).pipe(Effect.withSpan("Audit.compareReplay"))
