/**
 * Learning between node processes over libp2p. Joining a round another node holds: this node asks
 * that node for the round and its base (`LearnRoundBase`), trains from the base on the caller's data,
 * and sends its update as a `LearnRoundSubmit` signed by its node key, both over the command protocol
 * (`/edge-net/command/1.0.0`), where the holder's gate checks the signature as for any command.
 * Gossip: while the node gossips, every interval it pushes its adapter (`LearnGossipPush`, signed
 * by its node key) to a few connected peers that gossip too; each merges it and records the merge.
 */
import { Clock, Effect, Layer, Option, Random } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { AdapterTraining } from "../actors/adapters/AdapterTraining.js"
import { RoundRefused } from "../actors/learning/FederatedRound.js"
import { GossipLearning } from "../actors/learning/GossipLearning.js"
import { Learning } from "../actors/learning/Learning.js"
import type { RoundView } from "../actors/learning/LearningRpc.js"
import { LearningPeerRpcs, LearningRpcs } from "../actors/learning/LearningRpc.js"
import { NetworkCharter } from "../actors/network/CharterService.js"
import { loadAdapter } from "../compute/lora/AdapterFile.js"
import { adapterDocument, importAdapterDocument } from "../compute/lora/AdapterJson.js"
import { localAdapterDir } from "../compute/lora/LocalAdapters.js"
import { BlobStore } from "../content/BlobStore.js"
import { ModelSourceError } from "../content/ModelSource.js"
import { NodeKey } from "../content/NodeKey.js"
import { accountIdOf } from "../domain/Ed25519.js"
import { AccountId } from "../domain/Money.js"
import { publicKeyOfPeerId } from "../net/PeerBook.js"
import { Peers } from "../net/Peers.js"
import { authFor } from "./CommandSigning.js"
import { resolveData, resolveModel } from "./ModelSources.js"
import { sendToPeer } from "./Sequencing.js"

const sha256 = (bytes: Uint8Array | string) => crypto.createHash("sha256").update(bytes).digest("hex")

const contract = (tag: string) => {
  const rpc = LearningRpcs.requests.get(tag)
  if (rpc === undefined) throw new Error(`LearningRpcs has no ${tag}`)
  return rpc
}
const submitContract = contract("LearnRoundSubmit")
const pushContract = contract("LearnGossipPush")

/** The network the node's signatures name (its charter's), or why it has none. */
const networkOf = Effect.flatMap(
  NetworkCharter,
  (charter) =>
    Effect.flatMap(charter.terms(), (terms) =>
      Option.match(terms, {
        onNone: () => Effect.fail("this node's network is not founded: it cannot sign commands"),
        onSome: (founded) => Effect.succeed(founded.network)
      }))
)

export const LearningPeerRpcHandlers = LearningPeerRpcs.toLayer(
  Effect.gen(function*() {
    const peers = yield* Peers
    const key = yield* NodeKey
    const learning = yield* Learning
    const training = yield* AdapterTraining
    const store = yield* BlobStore
    const charter = yield* NetworkCharter
    const account = AccountId.make(accountIdOf(key.publicKey))

    return {
      LearnRoundJoin: (request) =>
        Effect.gen(function*() {
          const { roundId } = request
          const fail = (reason: string) => new RoundRefused({ roundId, reason })
          const holder = publicKeyOfPeerId(request.at)
          if (holder === undefined) {
            return yield* Effect.fail(fail(`${request.at} is not a peer id: expected base58 text such as 12D3KooW...`))
          }
          const here = holder === key.publicKey
          /** Runs an RPC on the holder; its own refusal of the round arrives as it is. */
          const onHolder = (tag: string, payload: unknown) =>
            Effect.flatMap(
              Effect.mapError(sendToPeer(peers, holder, tag, payload), (detail) => fail(`${request.at}: ${detail}`)),
              (exit) =>
                Effect.mapError(
                  exit,
                  (error) =>
                    error instanceof RoundRefused
                      ? error
                      : fail(`${request.at} refused ${tag}: ${error instanceof Error ? error.message : String(error)}`)
                )
            )

          const held = here
            ? yield* learning.baseDocument(roundId)
            : (yield* onHolder("LearnRoundBase", { roundId })) as {
              readonly round: RoundView
              readonly document: string
            }
          const spec = held.round.spec
          if (held.round.status !== "open" || spec === null) {
            return yield* Effect.fail(fail(`the round is ${held.round.status}`))
          }
          // The base as the holder sent it, checked against the checksum its round pins.
          const baseDir = path.join(store.root, "learning", "bases", sha256(held.document))
          if (!fs.existsSync(baseDir)) {
            const staging = `${baseDir}.incoming-${crypto.randomBytes(4).toString("hex")}`
            yield* importAdapterDocument(held.document, "the round's base", () => staging).pipe(
              Effect.mapError((error) => fail(error.message)),
              Effect.tapError(() => Effect.sync(() => fs.rmSync(staging, { recursive: true, force: true })))
            )
            fs.renameSync(staging, baseDir)
          }
          const base = yield* Effect.mapError(loadAdapter(baseDir), (error) => fail(error.message))
          if (base.metadata.checksum !== spec.base.checksum) {
            return yield* Effect.fail(fail(`${request.at} sent a base whose checksum is not the one its round pins`))
          }
          const model = yield* resolveModel(request.model)
          if (
            sha256(model.bytes) !== spec.base.baseModelDigest && model.baseModelDigest !== spec.base.baseModelDigest
          ) {
            return yield* Effect.fail(fail(`the model named is not the round's base model ${spec.base.baseModel}`))
          }
          if (model.tokenizer === undefined) {
            return yield* Effect.fail(new ModelSourceError({ reason: "training needs the model's tokenizer.json" }))
          }
          const data = yield* resolveData(request.data)
          // A stored update from an earlier join that never reached the round is trained again.
          const adapter = { id: `round-${roundId}`, version: "1.0.0" }
          fs.rmSync(localAdapterDir(store.root, adapter.id, adapter.version), { recursive: true, force: true })
          const trained = yield* training.train({
            base: {
              bytes: model.bytes,
              tokenizer: model.tokenizer,
              id: spec.base.baseModel,
              baseModelDigest: spec.base.baseModelDigest
            },
            data,
            config: {
              rank: base.weights.rank,
              alpha: base.weights.alpha,
              targetModules: Object.keys(base.weights.modules),
              maxSteps: request.steps,
              ...(request.learningRate === undefined ? {} : { learningRate: request.learningRate }),
              ...(request.seed === undefined ? {} : { seed: request.seed })
            },
            dataOptions: request.window === undefined ? undefined : { windowLength: request.window },
            adapter: { ...adapter, domain: spec.task },
            storeRoot: store.root,
            startWeights: base.weights
          }).pipe(Effect.mapError((error) => fail(`training: ${error.reason}`)))
          const update = yield* Effect.mapError(
            adapterDocument(localAdapterDir(store.root, adapter.id, adapter.version)),
            (error) => fail(error.message)
          )
          const submission = {
            roundId,
            peer: account,
            document: update.text,
            samples: trained.outcome.trainSamples,
            figures: {
              [trained.finished.metric]: trained.finished.after,
              [`${trained.finished.metric}Before`]: trained.finished.before,
              steps: trained.finished.steps
            }
          }
          if (here) return yield* learning.submit(submission)
          const network = yield* Effect.mapError(Effect.provideService(networkOf, NetworkCharter, charter), fail)
          const auth = authFor(submitContract, submission, { key, network }, yield* Clock.currentTimeMillis)
          return (yield* onHolder("LearnRoundSubmit", { ...submission, auth })) as RoundView
        })
    }
  })
)

/**
 * While the node gossips, an exchange every interval: its adapter pushed to up to `fanout` connected
 * peers, in random order, until that many took it (a peer that does not gossip refuses it).
 */
export const gossipExchanges = Layer.scopedDiscard(
  Effect.gen(function*() {
    const peers = yield* Peers
    const key = yield* NodeKey
    const gossip = yield* GossipLearning
    const charter = yield* NetworkCharter
    const account = AccountId.make(accountIdOf(key.publicKey))
    let lastExchange = 0

    // Whether the node gossips: an exchange when its interval has passed.
    const exchange = Effect.gen(function*() {
      const outgoing = yield* gossip.outgoing()
      if (Option.isNone(outgoing)) return false
      const { document, state } = outgoing.value
      const settings = state.settings!
      const now = yield* Clock.currentTimeMillis
      if (now - lastExchange < settings.intervalMs) return true
      lastExchange = now
      const network = yield* Effect.provideService(networkOf, NetworkCharter, charter)
      const connected = (yield* peers.view).peers.filter((peer) => peer.connected).map((peer) => peer.peerId)
      const candidates = yield* Random.shuffle(connected)
      let accepted = 0
      for (const peerId of candidates) {
        if (accepted >= settings.fanout) break
        const publicKey = publicKeyOfPeerId(peerId)
        if (publicKey === undefined) continue
        const push = { from: account, document, samples: settings.samples }
        const auth = authFor(pushContract, push, { key, network }, now)
        const answered = yield* Effect.either(
          Effect.flatten(sendToPeer(peers, publicKey, "LearnGossipPush", { ...push, auth }))
        )
        if (answered._tag === "Right") {
          accepted++
          yield* Effect.logInfo(`gossip: ${peerId} merged this node's ${state.adapter!.id}@${state.adapter!.version}`)
        } else {
          yield* Effect.logDebug(`gossip: ${peerId} did not take the push`, answered.left)
        }
      }
      return true
    })

    // While the node gossips, a look every 250 ms. Otherwise it waits to be told gossip started (and
    // looks every 30 s all the same): reading the learner's state four times a second was half of what
    // an idle node allocated (9.1 MB in 10 s, 4.5 MB without).
    yield* Effect.forkScoped(Effect.forever(
      Effect.catchAllCause(exchange, (cause) => Effect.as(Effect.logWarning("a gossip exchange failed", cause), false))
        .pipe(Effect.flatMap((gossiping) => gossiping ? Effect.sleep("250 millis") : gossip.nextChange("30 seconds")))
    ))
  })
)
