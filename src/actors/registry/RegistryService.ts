/**
 * The registry service: publishes correctly signed manifests (an id belongs to the key its first
 * manifest names as publisher), yanks on the owner's signed request, and answers lookups and listings
 * from a projection of the log.
 */
import { Clock, Context, Effect, Either, Layer, Option, Schema } from "effect"
import type { ModelManifest } from "../../content/Manifest.js"
import { manifestBytes, parseManifest, parseManifestText } from "../../content/Manifest.js"
import { verifyEmbeddedSignatures } from "../../content/ManifestSigning.js"
import { verifySignature } from "../../content/NodeKey.js"
import { accountIdOf } from "../../domain/Ed25519.js"
import { streamCategory, streamEntityId } from "../../domain/Ids.js"
import * as ActorRunner from "../../events/ActorRunner.js"
import { makeProjection } from "../../events/Projection.js"
import type { QualityReport } from "./AdapterReports.js"
import { qualityScore } from "./AdapterReports.js"
import { AdapterSharingGate, SHARE_WINDOW_MS, sharingProblem } from "./AdapterSharing.js"
import type {
  AdapterSummary,
  ModelSummary,
  PublishedView,
  PublishReceipt,
  RegistryKind,
  RegistryState,
  VersionRecord,
  VersionView
} from "./Registry.js"
import {
  Adapters,
  KindMismatch,
  latestVersion,
  Models,
  PublisherNotAllowed,
  publisherSignature,
  RegistryEvent,
  RegistryNotFound,
  SharingRefused,
  versionsOf,
  yankMessage,
  YankNotSigned
} from "./Registry.js"

/**
 * The publisher keys (Ed25519 public keys, hex) a registry publishes for, when it has such a list:
 * others can neither claim an id nor upload bytes. Without it, any key may claim an unowned id.
 */
export class RegistryPublishers
  extends Context.Tag("edge-net/RegistryPublishers")<RegistryPublishers, ReadonlySet<string>>()
{
  static readonly layer = (publicKeys: Iterable<string>) => Layer.succeed(RegistryPublishers, new Set(publicKeys))
}

/** An artifact as one published manifest declares it, and the key that published that manifest. */
export interface DeclaredArtifact {
  readonly size: number
  readonly publicKey: string
}

export interface PublishOptions {
  /** Publish a version below the highest one already published (a backport). */
  readonly allowOlder?: boolean | undefined
  /** Refuse the manifest unless it is of this kind (the model and adapter endpoints are separate). */
  readonly kind?: RegistryKind | undefined
}

/** An owner's signed request to withdraw a version (see `signYank`). */
export interface YankRequest {
  readonly kind?: RegistryKind | undefined
  readonly id: string
  readonly version: string
  readonly reason: string
  readonly keyId: string
  readonly publicKey: string
  readonly signature: string
}

/** A published version with its manifest parsed (unknown fields kept, so it still verifies). */
export interface PublishedManifest extends PublishedView {
  readonly manifest: ModelManifest
}

export interface ModelFilter {
  readonly type?: string | undefined
  readonly quantization?: string | undefined
}

export interface AdapterFilter {
  readonly baseModel?: string | undefined
  readonly domain?: string | undefined
}

const decodeEvent = Schema.decodeUnknownSync(RegistryEvent)

const toVersionView = (record: VersionRecord): VersionView => ({
  version: record.version,
  digest: record.digest,
  keyId: record.keyId,
  ...(record.yanked === undefined ? {} : { yanked: record.yanked })
})

export class Registry extends Effect.Service<Registry>()("edge-net/Registry", {
  effect: Effect.gen(function*() {
    const models = yield* ActorRunner.make(Models, { snapshotEvery: 50 })
    const adapters = yield* ActorRunner.make(Adapters, { snapshotEvery: 50 })
    const actorFor = (kind: RegistryKind) => (kind === "model" ? models : adapters)

    // Manifests were validated when published; parsing them again only fails on a corrupt journal.
    const parsed = new Map<string, ModelManifest>()
    const manifestOf = (record: { readonly manifest: unknown; readonly digest: string }): ModelManifest => {
      let manifest = parsed.get(record.digest)
      if (manifest === undefined) {
        manifest = Either.getOrThrowWith(
          parseManifest(record.manifest),
          (error) => new Error(`stored manifest ${record.digest}: ${error.message}`)
        )
        parsed.set(record.digest, manifest)
      }
      return manifest
    }

    // The listing projection: every id's state, folded from the log, caught up on read.
    const projection = {
      states: { model: new Map<string, RegistryState>(), adapter: new Map<string, RegistryState>() },
      /** Every artifact a published manifest lists, by sha256, as each manifest declares it. */
      artifacts: new Map<string, Array<DeclaredArtifact>>(),
      /** When each publisher key shared each adapter version (ms), for the sharing gate's hourly limit. */
      shares: new Map<string, Array<number>>()
    }
    const { catchUp } = yield* makeProjection([Models.category, Adapters.category], (record) => {
      const kind: RegistryKind = streamCategory(record.streamId) === Models.category ? "model" : "adapter"
      const event = decodeEvent(JSON.parse(record.payloadText))
      const states = projection.states[kind]
      const id = streamEntityId(record.streamId)
      states.set(id, Models.decider.evolve(states.get(id) ?? Models.decider.initialState, event))
      if (event._tag === "AdapterPublished") {
        // Keyed by the publisher's account (derived from its key), not its key id, a name anyone can pick.
        const publisher = accountIdOf(event.publicKey)
        const times = projection.shares.get(publisher) ?? []
        times.push(Date.parse(record.recordedAt))
        projection.shares.set(publisher, times)
      }
      if (event._tag === "ModelPublished" || event._tag === "AdapterPublished") {
        for (const artifact of Object.values(manifestOf(event).artifacts)) {
          const declared = projection.artifacts.get(artifact.sha256) ?? []
          declared.push({ size: artifact.size, publicKey: event.publicKey })
          projection.artifacts.set(artifact.sha256, declared)
        }
      }
    })

    const sharingGate = yield* Effect.serviceOption(AdapterSharingGate)
    const allowList = yield* Effect.serviceOption(RegistryPublishers)
    const mayPublish = (publicKey: string) => Option.isNone(allowList) || allowList.value.has(publicKey)

    /** Applies the sharing gate, when this registry has one, to a new adapter version. */
    const checkSharing = Effect.fn("Registry.checkSharing")(
      function*(manifest: ModelManifest, keyId: string, publicKey: string, nowMs: number) {
        if (Option.isNone(sharingGate)) return
        const gate = sharingGate.value
        yield* catchUp
        // Reputation belongs to the publisher's account, the one its key owns in the economy.
        const account = accountIdOf(publicKey)
        const problem = sharingProblem(yield* gate.rules, {
          reputationPpm: yield* gate.reputationPpm(account),
          sharesInWindow: (projection.shares.get(account) ?? []).filter((at) => at > nowMs - SHARE_WINDOW_MS).length,
          quality: manifest.adapter?.quality
        })
        if (problem !== undefined) {
          return yield* Effect.fail(new SharingRefused({ id: manifest.id, keyId, reason: problem }))
        }
      }
    )

    const publish = Effect.fn("Registry.publish")(function*(input: unknown, options: PublishOptions = {}) {
      const manifest = yield* typeof input === "string" ? parseManifestText(input) : parseManifest(input)
      const now = new Date(yield* Clock.currentTimeMillis)
      const verified = yield* verifyEmbeddedSignatures(manifest, now)
      const kind: RegistryKind = manifest.type === "adapter" ? "adapter" : "model"
      if (options.kind !== undefined && options.kind !== kind) {
        return yield* Effect.fail(new KindMismatch({ id: manifest.id, type: manifest.type, expected: options.kind }))
      }
      const actor = actorFor(kind)
      // Co-signed manifests: the key the signed body names publishes, wherever its signature sits.
      const publisher = yield* publisherSignature(manifest)
      if (!mayPublish(publisher.publicKey)) {
        return yield* Effect.fail(
          new PublisherNotAllowed({ id: manifest.id, keyId: publisher.keyId, publicKey: publisher.publicKey })
        )
      }
      const { state } = yield* actor.state(manifest.id)
      // A version already published is a resend, answered below without counting as a new share.
      if (kind === "adapter" && !Object.hasOwn(state.versions, manifest.version)) {
        yield* checkSharing(manifest, publisher.keyId, publisher.publicKey, now.getTime())
      }
      const result = yield* actor.send(
        manifest.id,
        {
          _tag: "Publish",
          manifest,
          keyId: publisher.keyId,
          publicKey: publisher.publicKey,
          allowOlder: options.allowOlder === true
        },
        { commandId: `publish/${manifest.version}/${verified.digest}` }
      )
      return {
        kind,
        id: manifest.id,
        version: manifest.version,
        digest: verified.digest,
        keyId: publisher.keyId,
        position: result.position,
        duplicate: result.duplicate
      } satisfies PublishReceipt
    })

    const publishAdapter = (input: unknown, options: Omit<PublishOptions, "kind"> = {}) =>
      publish(input, { ...options, kind: "adapter" })

    const yank = Effect.fn("Registry.yank")(function*(request: YankRequest) {
      const kind = request.kind ?? "model"
      const { id, version, reason, keyId, publicKey } = request
      if (!verifySignature(publicKey, yankMessage(kind, id, version, reason), request.signature)) {
        return yield* Effect.fail(new YankNotSigned({ id, version, keyId }))
      }
      const result = yield* actorFor(kind).send(id, { _tag: "Yank", id, version, reason, keyId, publicKey }, {
        commandId: `yank/${version}`
      })
      return toVersionView(result.state.versions[version]!)
    })

    /** One version, or the latest that is not yanked. */
    const get = Effect.fn("Registry.get")(function*(id: string, version?: string, kind: RegistryKind = "model") {
      const { state } = yield* actorFor(kind).state(id)
      const record = version === undefined
        ? latestVersion(state)
        : Object.hasOwn(state.versions, version)
        ? state.versions[version]
        : undefined
      if (record === undefined) {
        return yield* Effect.fail(
          new RegistryNotFound({
            kind,
            id,
            ...(version === undefined ? { allYanked: state.owner !== null } : { version })
          })
        )
      }
      return {
        kind,
        id,
        ...toVersionView(record),
        publicKey: record.publicKey,
        manifest: manifestOf(record)
      } satisfies PublishedManifest
    })

    /** Every version of an id, oldest first, yanked ones included and marked. */
    const versions = Effect.fn("Registry.versions")(function*(id: string, kind: RegistryKind = "model") {
      const { state } = yield* actorFor(kind).state(id)
      if (state.owner === null) return yield* Effect.fail(new RegistryNotFound({ kind, id }))
      return versionsOf(state).map(toVersionView)
    })

    const latestOfEach = (kind: RegistryKind) =>
      [...projection.states[kind].entries()]
        .sort(([left], [right]) => (left < right ? -1 : left > right ? 1 : 0))
        .flatMap(([id, state]) => {
          const record = latestVersion(state)
          return record === undefined ? [] : [{ id, record, manifest: manifestOf(record) }]
        })

    /** The latest version of every model, optionally of one type and quantization, sorted by id. */
    const list = Effect.fn("Registry.list")(function*(filter: ModelFilter = {}) {
      yield* catchUp
      return latestOfEach("model").flatMap(({ id, record, manifest }): Array<ModelSummary> => {
        const quantization = manifest.optimization?.quantization
        if (filter.type !== undefined && manifest.type !== filter.type) return []
        if (filter.quantization !== undefined && quantization !== filter.quantization.toUpperCase()) return []
        const format = manifest.optimization?.format
        return [{
          id,
          name: manifest.name,
          version: record.version,
          type: manifest.type,
          ...(manifest.family === undefined ? {} : { family: manifest.family }),
          ...(quantization === undefined ? {} : { quantization }),
          ...(format === undefined ? {} : { format }),
          size: manifestBytes(manifest),
          digest: record.digest,
          keyId: record.keyId,
          publishedBy: manifest.publishedBy,
          publishedAt: manifest.publishedAt,
          expiresAt: manifest.expiresAt
        }]
      })
    })

    /** The latest version of every adapter, optionally for one base model and domain, sorted by id. */
    const listAdapters = Effect.fn("Registry.listAdapters")(function*(filter: AdapterFilter = {}) {
      yield* catchUp
      return latestOfEach("adapter").flatMap(({ id, record, manifest }): Array<AdapterSummary> => {
        const adapter = manifest.adapter
        if (adapter === undefined) return []
        if (filter.baseModel !== undefined && adapter.baseModel !== filter.baseModel) return []
        if (filter.domain !== undefined && adapter.domain !== filter.domain) return []
        const { reports, score } = qualityScore(projection.states.adapter.get(id)?.reports, adapter.quality)
        return [{
          id,
          name: manifest.name,
          version: record.version,
          baseModel: adapter.baseModel,
          rank: adapter.rank,
          domain: adapter.domain,
          ...(adapter.quality === undefined ? {} : { quality: adapter.quality }),
          ...(score === undefined ? {} : { score, reports }),
          digest: record.digest,
          keyId: record.keyId,
          publishedAt: manifest.publishedAt
        }]
      })
    })

    /**
     * The sizes that published manifests (models or adapters, yanked or not) declare for an artifact with
     * this sha256, counting only manifests whose publisher may still publish here; empty when none lists it.
     */
    const artifactSizes = Effect.fn("Registry.artifactSizes")(function*(sha256: string) {
      yield* catchUp
      const declared = (projection.artifacts.get(sha256) ?? []).filter((artifact) => mayPublish(artifact.publicKey))
      return [...new Set(declared.map((artifact) => artifact.size))].sort((left, right) => left - right)
    })

    /** Whether such a manifest lists an artifact with this sha256 (see `artifactSizes`). */
    const listsArtifact = (sha256: string) => Effect.map(artifactSizes(sha256), (sizes) => sizes.length > 0)

    /**
     * Records a quality report on a published adapter, one standing report per reporter (the latest by
     * its signed timestamp). The caller has checked the reporter's signature; the signature is stored
     * with the report, so an audit can check it again. Answers the adapter's score after it.
     */
    const reportAdapter = Effect.fn("Registry.reportAdapter")(function*(id: string, report: QualityReport) {
      const { state } = yield* adapters.state(id)
      if (state.owner === null) return yield* Effect.fail(new RegistryNotFound({ kind: "adapter", id }))
      const result = yield* adapters.send(id, { _tag: "Report", id, report }, {
        commandId: `report/${report.reporter}/${report.timestamp}/${report.signature.slice(0, 32)}`
      })
      return { ...scoreOf(result.state), recorded: result.position > 0 && !result.duplicate }
    })

    const scoreOf = (state: RegistryState) => {
      const latest = latestVersion(state)
      return qualityScore(state.reports, latest === undefined ? undefined : manifestOf(latest).adapter?.quality)
    }

    /** An adapter's quality score and standing reports (see AdapterReports.ts). */
    const adapterScore = Effect.fn("Registry.adapterScore")(function*(id: string) {
      const { state } = yield* adapters.state(id)
      if (state.owner === null) return yield* Effect.fail(new RegistryNotFound({ kind: "adapter", id }))
      return { ...scoreOf(state), standing: Object.values(state.reports ?? {}) }
    })

    return {
      publish,
      publishAdapter,
      yank,
      get,
      versions,
      list,
      listAdapters,
      artifactSizes,
      listsArtifact,
      reportAdapter,
      adapterScore
    } as const
  })
}) {}
