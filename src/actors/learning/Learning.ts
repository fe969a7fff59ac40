/**
 * The Learning service: federated rounds on a node (the design card's "federated learner"). A
 * coordinator opens a round on an adapter the node keeps; peers train from it on their own data and
 * submit the adapter they end with (the seed's one-document JSON, checked like any import); the
 * coordinator aggregates them by the round's rule (compute/learning/Aggregators.ts) over the dense
 * updates ΔW_peer - ΔW_base, which is exact where averaging the A and B factors is not, re-factors the
 * aggregate to the adapter's rank and stores it as the round's result. Each excluded update lowers
 * its peer's reputation through the economy's rules (a failure of weight 1, once per round).
 */
import { Clock, Effect, Option, Stream } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import type { AggregationRule } from "../../compute/learning/Aggregators.js"
import { aggregate, describeRule } from "../../compute/learning/Aggregators.js"
import type { AdaptedModel } from "../../compute/learning/Updates.js"
import { applyDenseUpdate, denseUpdate } from "../../compute/learning/Updates.js"
import type { Adapter } from "../../compute/lora/AdapterFile.js"
import { loadAdapter } from "../../compute/lora/AdapterFile.js"
import { adapterDocument, importAdapterDocument } from "../../compute/lora/AdapterJson.js"
import { loadLocalAdapter, localAdapterDir, saveLocalAdapter } from "../../compute/lora/LocalAdapters.js"
import { BlobStore } from "../../content/BlobStore.js"
import { makeStreamId } from "../../domain/Ids.js"
import * as ActorRunner from "../../events/ActorRunner.js"
import { Journal } from "../../events/Journal.js"
import { Reputation } from "../economy/ReputationService.js"
import type { RoundSpec, RoundState, RuleSpec, Submission } from "./FederatedRound.js"
import { aggregationProblem, FederatedRound, RoundRefused } from "./FederatedRound.js"

export interface OpenRequest {
  readonly roundId: string
  readonly coordinator: string
  readonly base: { readonly id: string; readonly version?: string | undefined }
  readonly task: string
  readonly rule: RuleSpec
  /** How long the round takes updates, from now. */
  readonly durationMs: number
  readonly quorum: number
  readonly result: { readonly id: string; readonly version: string }
}

export interface SubmitRequest {
  readonly roundId: string
  readonly peer: string
  /** The adapter the peer trained from the round's base, as one JSON document (AdapterExport's). */
  readonly document: string
  readonly samples: number
  readonly figures?: Readonly<Record<string, number>> | undefined
}

const updatesDir = (root: string, roundId: string) =>
  path.join(root, "learning", crypto.createHash("sha256").update(roundId).digest("hex").slice(0, 24))

const asModel = (adapter: Adapter): AdaptedModel => ({
  weights: adapter.weights,
  ...(adapter.classifier === undefined ? {} : { head: adapter.classifier.head })
})

export class Learning extends Effect.Service<Learning>()("edge-net/Learning", {
  effect: Effect.gen(function*() {
    const rounds = yield* ActorRunner.make(FederatedRound, { snapshotEvery: 0 })
    const journal = yield* Journal
    const store = yield* BlobStore
    const reputation = yield* Effect.serviceOption(Reputation)

    const refused = (roundId: string) => (reason: string | { readonly message: string }) =>
      new RoundRefused({ roundId, reason: typeof reason === "string" ? reason : reason.message })

    const send = (roundId: string, command: Parameters<typeof rounds.send>[1], commandId: string) =>
      Effect.mapError(rounds.send(roundId, command, { commandId }), refused(roundId))

    const state = (roundId: string) =>
      Effect.map(rounds.state(roundId), ({ state, version }) => ({ ...state, version }))

    const existing = (roundId: string) =>
      Effect.flatMap(state(roundId), (round) =>
        round.status === "none" || round.spec === null
          ? Effect.fail(new RoundRefused({ roundId, reason: "no such round" }))
          : Effect.succeed(round as RoundState & { readonly spec: RoundSpec; readonly version: number }))

    const open = Effect.fn("Learning.open")(function*(request: OpenRequest) {
      const fail = refused(request.roundId)
      const base = yield* Effect.mapError(loadLocalAdapter(store.root, request.base.id, request.base.version), fail)
      const now = yield* Clock.currentTimeMillis
      const spec: RoundSpec = {
        coordinator: request.coordinator,
        base: {
          id: base.metadata.id,
          version: base.metadata.version,
          checksum: base.metadata.checksum,
          baseModel: base.metadata.baseModel,
          baseModelDigest: base.metadata.baseModelDigest
        },
        task: request.task,
        rule: request.rule,
        deadline: now + request.durationMs,
        quorum: request.quorum,
        result: request.result
      }
      yield* send(request.roundId, { _tag: "Open", roundId: request.roundId, spec }, `open/${request.roundId}`)
      return yield* state(request.roundId)
    })

    /** Checks the update against the round (its base model and modules), keeps it, and records it. */
    const submit = Effect.fn("Learning.submit")(function*(request: SubmitRequest) {
      const fail = refused(request.roundId)
      const round = yield* existing(request.roundId)
      const digest = crypto.createHash("sha256").update(request.document).digest("hex")
      const directory = path.join(updatesDir(store.root, request.roundId), digest)
      if (!fs.existsSync(directory)) {
        const staging = `${directory}.incoming-${crypto.randomBytes(4).toString("hex")}`
        yield* importAdapterDocument(request.document, "the update", () => staging).pipe(
          Effect.mapError(fail),
          Effect.tapError(() => Effect.sync(() => fs.rmSync(staging, { recursive: true, force: true })))
        )
        fs.renameSync(staging, directory)
      }
      const update = yield* Effect.mapError(loadAdapter(directory), fail)
      if (update.metadata.baseModelDigest !== round.spec.base.baseModelDigest) {
        return yield* Effect.fail(
          fail(
            `the update was made for base model ${update.metadata.baseModel}, not the round's ${round.spec.base.baseModel}`
          )
        )
      }
      const base = yield* Effect.mapError(
        loadLocalAdapter(store.root, round.spec.base.id, round.spec.base.version),
        fail
      )
      const modules = (adapter: Adapter) => Object.keys(adapter.weights.modules).sort().join(",")
      if (modules(update) !== modules(base)) {
        return yield* Effect.fail(
          fail(`the update adapts modules ${modules(update)}, the round's base ${modules(base)}`)
        )
      }
      if ((update.classifier === undefined) !== (base.classifier === undefined)) {
        return yield* Effect.fail(fail("the update and the round's base must both have a classifier head, or neither"))
      }
      // The update as submitted, in the content store: anyone auditing the round can fetch it by its digest.
      yield* Effect.mapError(store.put(Stream.make(new TextEncoder().encode(request.document))), fail)
      const submission: Submission = {
        peer: request.peer,
        digest,
        samples: request.samples,
        figures: { ...request.figures }
      }
      yield* send(
        request.roundId,
        { _tag: "Submit", submission, now: yield* Clock.currentTimeMillis },
        `submit/${request.peer}/${digest}`
      )
      return yield* state(request.roundId)
    })

    const ruleOf = (roundId: string, spec: RoundSpec, peers: ReadonlyArray<string>) =>
      Effect.gen(function*(): Effect.fn.Return<AggregationRule, RoundRefused> {
        switch (spec.rule._tag) {
          case "fedavg":
          case "median":
            return { kind: spec.rule._tag }
          case "trimmed-mean":
            return { kind: "trimmed-mean", trim: spec.rule.trim }
          case "krum":
            return { kind: "krum", attackers: spec.rule.attackers }
          case "multi-krum":
            return { kind: "multi-krum", attackers: spec.rule.attackers, selected: spec.rule.selected }
          case "reputation": {
            if (Option.isNone(reputation)) {
              return yield* Effect.fail(new RoundRefused({ roundId, reason: "this node keeps no reputation" }))
            }
            const scores = yield* Effect.forEach(
              peers,
              (peer) => Effect.map(reputation.value.score(peer), (ppm) => [peer, Number(ppm) / 1e6] as const)
            )
            return { kind: "reputation", reputation: new Map(scores) }
          }
        }
      })

    /**
     * Aggregates the round's updates by its rule, stores the result as the round's adapter, records
     * which updates counted and why, and lowers the reputation of each peer whose update was excluded.
     */
    const aggregateRound = Effect.fn("Learning.aggregate")(function*(roundId: string) {
      const fail = refused(roundId)
      const round = yield* existing(roundId)
      const problem = aggregationProblem(round)
      if (problem !== undefined) return yield* Effect.fail(fail(`cannot aggregate: ${problem}`))
      const { spec } = round
      const base = yield* Effect.mapError(loadLocalAdapter(store.root, spec.base.id, spec.base.version), fail)
      const updates = yield* Effect.forEach(round.updates, (submission) =>
        Effect.map(
          Effect.mapError(loadAdapter(path.join(updatesDir(store.root, roundId), submission.digest)), fail),
          (adapter) => denseUpdate(submission.peer, submission.samples, asModel(adapter), asModel(base))
        ))
      const rule = yield* ruleOf(roundId, spec, round.updates.map((update) => update.peer))
      const aggregated = yield* Effect.try({
        try: () => aggregate(updates, rule),
        catch: (error) => fail(String((error as Error).message ?? error))
      })
      const moved = applyDenseUpdate(asModel(base), aggregated)
      const { checksum: _, signature: __, classifier: ___, ...description } = base.metadata
      const saved = yield* saveLocalAdapter(
        store.root,
        {
          ...description,
          id: spec.result.id,
          version: spec.result.version,
          name: spec.result.id,
          description: `round ${roundId}: ${describeRule(rule)} of ${
            aggregated.verdicts.filter((v) => v.kept).length
          } of ${updates.length} updates from ${spec.base.id}@${spec.base.version}`,
          createdAt: new Date().toISOString()
        },
        moved.model.weights,
        {
          classifier: moved.model.head === undefined || base.classifier === undefined
            ? undefined
            : { head: moved.model.head, labels: base.classifier.labels }
        }
      ).pipe(Effect.mapError(fail))
      const verdicts = aggregated.verdicts.map((verdict, index) => ({
        peer: verdict.peer,
        digest: round.updates[index]!.digest,
        kept: verdict.kept,
        reason: verdict.reason
      }))
      yield* send(roundId, {
        _tag: "Aggregate",
        outcome: {
          rule: describeRule(rule),
          verdicts,
          samples: aggregated.samples,
          result: { id: saved.id, version: saved.version, checksum: saved.checksum },
          refactorError: Math.max(0, ...Object.values(moved.relativeErrors))
        }
      }, `aggregate/${roundId}`)
      if (Option.isSome(reputation)) {
        for (const verdict of verdicts.filter((v) => !v.kept)) {
          yield* Effect.mapError(reputation.value.recordFailure(verdict.peer, 1, `round/${roundId}`), fail)
        }
      }
      return yield* state(roundId)
    })

    const close = Effect.fn("Learning.close")(function*(roundId: string) {
      yield* send(roundId, { _tag: "Close", now: yield* Clock.currentTimeMillis }, `close/${roundId}`)
      return yield* state(roundId)
    })

    /**
     * What the coordinator's node does once a round's deadline has passed: aggregates it if it has its
     * quorum (a peer that never submitted does not hold it up), then closes it; below the quorum, or
     * when the aggregation cannot run, it closes as failed with the reason. Before the deadline, or on
     * a round already closed, it changes nothing.
     */
    const settle = Effect.fn("Learning.settle")(function*(roundId: string) {
      const round = yield* existing(roundId)
      const now = yield* Clock.currentTimeMillis
      if (now <= round.spec.deadline || round.status === "closed" || round.status === "failed") return round
      if (round.status === "open" && round.updates.length >= round.spec.quorum) {
        const aggregated = yield* Effect.either(aggregateRound(roundId))
        if (aggregated._tag === "Left") {
          yield* send(roundId, {
            _tag: "Close",
            now,
            because: `aggregation failed: ${aggregated.left.reason}`
          }, `close/${roundId}`)
          return yield* state(roundId)
        }
      }
      return yield* close(roundId)
    })

    /** The round's base adapter as one JSON document: what a joining peer trains from. */
    const baseDocument = Effect.fn("Learning.baseDocument")(function*(roundId: string) {
      const round = yield* existing(roundId)
      const directory = localAdapterDir(store.root, round.spec.base.id, round.spec.base.version)
      const document = yield* Effect.mapError(adapterDocument(directory), refused(roundId))
      return { round, document: document.text }
    })

    /** Every recorded step of a round with its journal position. */
    const history = (roundId: string) => journal.readStream(makeStreamId(FederatedRound.category, roundId), 1)

    return {
      open,
      submit,
      aggregate: aggregateRound,
      close,
      settle,
      baseDocument,
      round: state,
      history
    } as const
  })
}) {}
