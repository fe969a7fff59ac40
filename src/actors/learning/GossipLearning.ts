/**
 * Gossip learning on a node: it starts on an adapter it keeps; a neighbour's signed push (its adapter
 * as one JSON document and the samples behind it) is merged into the node's adapter as the weighted
 * mean of the two dense updates, weights samples × reputation (the node's own reputation counts as 1),
 * re-factored to the adapter's rank and stored as the next version of `<id>-gossip`. Which neighbours
 * to push to and when is the peer's business (rpc/LearningPeers.ts); this service only merges and
 * records, so replaying the log rebuilds the node's adapter lineage.
 */
import type { Duration } from "effect"
import { Effect, Option, Queue } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { refactorMean } from "../../compute/learning/LoraMeans.js"
import type { Adapter } from "../../compute/lora/AdapterFile.js"
import { loadAdapter } from "../../compute/lora/AdapterFile.js"
import { adapterDocument, importAdapterDocument } from "../../compute/lora/AdapterJson.js"
import { loadLocalAdapter, localAdapterDir, saveLocalAdapter } from "../../compute/lora/LocalAdapters.js"
import { BlobStore } from "../../content/BlobStore.js"
import * as ActorRunner from "../../events/ActorRunner.js"
import { Reputation } from "../economy/ReputationService.js"
import type { GossipState } from "./GossipLearner.js"
import { GOSSIP_LEARNER_ID, GossipLearner, GossipRefused } from "./GossipLearner.js"

export interface GossipStartRequest {
  readonly adapter: { readonly id: string; readonly version?: string | undefined }
  readonly samples: number
  readonly fanout: number
  readonly intervalMs: number
}

export interface GossipPush {
  readonly from: string
  readonly document: string
  readonly samples: number
}

const refusal = (reason: string | { readonly message: string }) =>
  new GossipRefused({ reason: typeof reason === "string" ? reason : reason.message })

const modulesOf = (adapter: Adapter) => Object.keys(adapter.weights.modules).sort().join(",")

export class GossipLearning extends Effect.Service<GossipLearning>()("edge-net/GossipLearning", {
  effect: Effect.gen(function*() {
    const learners = yield* ActorRunner.make(GossipLearner, { snapshotEvery: 0 })
    const store = yield* BlobStore
    const reputation = yield* Effect.serviceOption(Reputation)

    const state = Effect.map(learners.state(GOSSIP_LEARNER_ID), ({ state, version }) => ({ ...state, version }))
    // Told when the node starts or stops gossiping, so a loop waiting for gossip need not poll the log.
    const changes = yield* Queue.sliding<void>(1)

    const send = (command: Parameters<typeof learners.send>[1], commandId: string) =>
      Effect.mapError(learners.send(GOSSIP_LEARNER_ID, command, { commandId }), refusal)

    const start = Effect.fn("GossipLearning.start")(function*(request: GossipStartRequest) {
      const adapter = yield* Effect.mapError(
        loadLocalAdapter(store.root, request.adapter.id, request.adapter.version),
        refusal
      )
      const { metadata } = adapter
      yield* send({
        _tag: "Start",
        started: {
          adapter: { id: metadata.id, version: metadata.version, checksum: metadata.checksum },
          baseModelDigest: metadata.baseModelDigest,
          fanout: request.fanout,
          intervalMs: request.intervalMs,
          samples: request.samples
        }
      }, `gossip-start/${crypto.randomUUID()}`)
      yield* Queue.offer(changes, undefined)
      return yield* state
    })

    const stop = Effect.fn("GossipLearning.stop")(function*() {
      yield* send({ _tag: "Stop" }, `gossip-stop/${crypto.randomUUID()}`)
      yield* Queue.offer(changes, undefined)
      return yield* state
    })

    /** Waits until the node starts or stops gossiping, or `atMost` has passed. */
    const nextChange = (atMost: Duration.DurationInput) => Effect.raceFirst(Queue.take(changes), Effect.sleep(atMost))

    /** The adapter the node gossips now, as one JSON document, with the samples behind it. */
    const outgoing = Effect.fn("GossipLearning.outgoing")(function*() {
      const now = yield* state
      if (now.status !== "running" || now.adapter === null || now.settings === null) {
        return Option.none<{ readonly document: string; readonly state: GossipState }>()
      }
      const directory = localAdapterDir(store.root, now.adapter.id, now.adapter.version)
      const document = yield* Effect.mapError(adapterDocument(directory), refusal)
      return Option.some({ document: document.text, state: now })
    })

    /** Merges a neighbour's push into the node's adapter and records it. `commandId`: the push's own id. */
    const merge = Effect.fn("GossipLearning.merge")(function*(push: GossipPush, commandId: string) {
      const now = yield* state
      if (now.status !== "running" || now.adapter === null || now.settings === null) {
        return yield* Effect.fail(refusal("this node is not gossiping"))
      }
      const digest = crypto.createHash("sha256").update(push.document).digest("hex")
      const directory = path.join(store.root, "learning", "gossip", digest)
      if (!fs.existsSync(directory)) {
        const staging = `${directory}.incoming-${crypto.randomBytes(4).toString("hex")}`
        yield* importAdapterDocument(push.document, "the push", () => staging).pipe(
          Effect.mapError(refusal),
          Effect.tapError(() => Effect.sync(() => fs.rmSync(staging, { recursive: true, force: true })))
        )
        fs.renameSync(staging, directory)
      }
      const theirs = yield* Effect.mapError(loadAdapter(directory), refusal)
      const own = yield* Effect.mapError(loadLocalAdapter(store.root, now.adapter.id, now.adapter.version), refusal)
      if (theirs.metadata.baseModelDigest !== now.baseModelDigest) {
        return yield* Effect.fail(refusal(`the push adapts base model ${theirs.metadata.baseModel}, not this node's`))
      }
      if (modulesOf(theirs) !== modulesOf(own)) {
        return yield* Effect.fail(refusal(`the push adapts modules ${modulesOf(theirs)}, this node ${modulesOf(own)}`))
      }
      const heard = Option.isSome(reputation)
        ? Number(yield* reputation.value.score(push.from)) / 1e6
        : 1
      const ownWeight = now.settings.samples
      const theirWeight = push.samples * heard
      const merged = yield* Effect.try({
        try: () =>
          refactorMean([own.weights, theirs.weights], own.weights.rank, {
            weights: [ownWeight, theirWeight],
            alpha: own.weights.alpha
          }),
        catch: (error) => refusal(error instanceof Error ? error.message : String(error))
      })
      const id = own.metadata.id.endsWith("-gossip") ? own.metadata.id : `${own.metadata.id}-gossip`
      const version = `0.${now.merges + 1}.0`
      // A version stored by a merge that was never recorded (the node stopped in between) is redone.
      fs.rmSync(localAdapterDir(store.root, id, version), { recursive: true, force: true })
      const { checksum: _, signature: __, classifier: ___, ...description } = own.metadata
      const saved = yield* saveLocalAdapter(
        store.root,
        {
          ...description,
          id,
          version,
          name: id,
          description: `gossip merge ${now.merges + 1}: ${own.metadata.id}@${own.metadata.version} with ${
            push.from.slice(0, 12)
          }'s update (weights ${ownWeight} and ${theirWeight})`,
          createdAt: new Date().toISOString()
        },
        merged.weights,
        {
          classifier: own.classifier === undefined
            ? undefined
            : { head: own.classifier.head, labels: own.classifier.labels }
        }
      ).pipe(Effect.mapError(refusal))
      yield* send({
        _tag: "Merge",
        merged: {
          from: push.from,
          digest,
          samples: push.samples,
          reputation: heard,
          ownWeight,
          theirWeight,
          result: { id: saved.id, version: saved.version, checksum: saved.checksum },
          refactorError: Math.max(0, ...Object.values(merged.relativeErrors))
        }
      }, commandId)
      return yield* state
    })

    return { start, stop, merge, outgoing, nextChange, state } as const
  })
}) {}
