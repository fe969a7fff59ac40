/**
 * The Models service: what a holder of models does with them, as one service on a blob store and a
 * trust store. It pulls a model (manifest trusted, fresh and not a rollback; pieces verified as they
 * arrive; a killed pull resumes), verifies what the store holds against the manifest and the trusted
 * keys, and builds the signed manifest that publishes files or stored blobs. The models CLI runs it
 * on this machine's cache; a node runs it on its own store and trust keys, and serves it over RPC.
 */
import { Effect, Either, Mailbox, Schema, Stream } from "effect"
import { BlobStore } from "./BlobStore.js"
import { readManifest } from "./LocalModels.js"
import type { ModelManifest } from "./Manifest.js"
import { verifyManifest } from "./ManifestSigning.js"
import type { ModelsConfig } from "./ModelsConfig.js"
import type { PublishRequest } from "./Publish.js"
import { buildManifest } from "./Publish.js"
import type { PullRequest } from "./Pull.js"
import { pull } from "./Pull.js"
import { TrustStore } from "./TrustStore.js"

/** Any failure of the service, in one line: what the RPC answers and the CLI prints. */
export class ModelsFailure extends Schema.TaggedError<ModelsFailure>()("ModelsFailure", {
  reason: Schema.String
}) {
  override get message() {
    return this.reason
  }
}

/** Any error of the layers under the service, as its one-line failure. */
export const modelsFailure = (error: { readonly message: string }) => new ModelsFailure({ reason: error.message })

const SourceBytes = Schema.Struct({ name: Schema.String, bytes: Schema.Number })
const Dropped = Schema.Struct({ source: Schema.String, reason: Schema.String })

/** Pull's receipt (Pull.ts `PullReceipt`) as a schema, for the wire. */
export const PullReceiptView = Schema.Struct({
  id: Schema.String,
  version: Schema.String,
  verifiedBy: Schema.Array(Schema.String),
  artifacts: Schema.Array(Schema.Struct({
    name: Schema.String,
    filename: Schema.String,
    digest: Schema.String,
    size: Schema.Number,
    cid: Schema.String,
    cached: Schema.Boolean,
    bytesFetched: Schema.Number,
    bytesReused: Schema.Number,
    sources: Schema.Array(SourceBytes),
    dropped: Schema.Array(Dropped)
  })),
  output: Schema.optional(Schema.String)
})

/** What a watched pull reports: byte progress per file, sources dropped, and last its receipt. */
export const ModelPullEvent = Schema.Union(
  Schema.TaggedStruct("PullProgress", {
    label: Schema.String,
    bytesDone: Schema.Number,
    bytesTotal: Schema.Number,
    bytesPerSecond: Schema.Number,
    etaSeconds: Schema.optional(Schema.Number)
  }),
  Schema.TaggedStruct("SourceDropped", Dropped.fields),
  Schema.TaggedStruct("Pulled", { receipt: PullReceiptView })
)
export type ModelPullEvent = typeof ModelPullEvent.Type

/** A verification: every artifact re-hashed (sha256, size, CID) and, when asked, the signatures checked. */
export const VerifyReport = Schema.Struct({
  id: Schema.String,
  version: Schema.String,
  ok: Schema.Boolean,
  artifacts: Schema.Array(Schema.Struct({ filename: Schema.String, digest: Schema.String, ok: Schema.Boolean })),
  signedBy: Schema.Array(Schema.String),
  problems: Schema.Array(Schema.String)
})
export type VerifyReport = typeof VerifyReport.Type

/** Progress is a bar, not a log: at most one update per file this often, and always its last. */
const PROGRESS_EVERY_MS = 100

export class Models extends Effect.Service<Models>()("edge-net/Models", {
  effect: (config: ModelsConfig) =>
    Effect.gen(function*() {
      const store = yield* BlobStore
      const trust = yield* TrustStore
      const provided = <A, E>(effect: Effect.Effect<A, E, BlobStore | TrustStore>) =>
        effect.pipe(Effect.provideService(BlobStore, store), Effect.provideService(TrustStore, trust))

      /** Pulls with the caller's callbacks; fails in one line and keeps what was verified for a resume. */
      const pullModel = (request: PullRequest) =>
        provided(pull(request, config)).pipe(Effect.mapError(modelsFailure), Effect.withSpan("Models.pull"))

      /** The same pull as a stream of its progress, ending with the receipt. */
      const pullStream = (
        request: Omit<PullRequest, "onProgress" | "onSourceDropped">
      ): Stream.Stream<ModelPullEvent, ModelsFailure> =>
        Stream.unwrapScoped(Effect.gen(function*() {
          const mailbox = yield* Mailbox.make<ModelPullEvent, ModelsFailure>()
          const lastSent = new Map<string, number>()
          yield* pullModel({
            ...request,
            onProgress: ({ bytesDone, bytesPerSecond, bytesTotal, etaSeconds, label }) => {
              const now = performance.now()
              if (bytesDone < bytesTotal && now - (lastSent.get(label) ?? -Infinity) < PROGRESS_EVERY_MS) return
              lastSent.set(label, now)
              mailbox.unsafeOffer({
                _tag: "PullProgress",
                label,
                bytesDone,
                bytesTotal,
                bytesPerSecond,
                ...(etaSeconds === undefined ? {} : { etaSeconds })
              })
            },
            onSourceDropped: (report) => mailbox.unsafeOffer({ _tag: "SourceDropped", ...report })
          }).pipe(
            Effect.map((receipt): ModelPullEvent => ({ _tag: "Pulled", receipt })),
            Effect.flatMap((event) => mailbox.offer(event)),
            Effect.asVoid,
            Mailbox.into(mailbox),
            Effect.forkScoped
          )
          return Mailbox.toStream(mailbox)
        }))

      /**
       * Re-hashes each artifact of a held model and, with `checkSignature`, checks its signatures
       * against the trusted keys. A file whose bytes changed is dropped from the store and reported;
       * the report says what failed rather than failing, so a caller sees every problem at once.
       */
      const verify = Effect.fn("Models.verify")(
        function*(reference: { readonly id: string; readonly version?: string | undefined }, checkSignature: boolean) {
          const manifest = yield* Effect.mapError(
            readManifest(store.root, reference.id, reference.version),
            modelsFailure
          )
          const problems: Array<string> = []
          const artifacts: Array<{ filename: string; digest: string; ok: boolean }> = []
          for (const artifact of Object.values(manifest.artifacts)) {
            const checked = yield* Effect.either(store.verify(artifact.sha256))
            const ok = Either.isRight(checked) && checked.right.size === artifact.size &&
              checked.right.cid === artifact.cid
            if (!ok) {
              problems.push(
                `${artifact.filename}: ${
                  Either.isLeft(checked) ? checked.left.message : "size or CID differs from the manifest"
                }`
              )
            }
            artifacts.push({ filename: artifact.filename, digest: `sha256-${artifact.sha256}`, ok })
          }
          let signedBy: ReadonlyArray<string> = []
          if (checkSignature) {
            const policy = yield* Effect.mapError(trust.policy(config.trust.threshold), modelsFailure)
            const verified = verifyManifest(manifest, policy, new Date(), { allowRollback: true })
            if (Either.isLeft(verified)) problems.push(verified.left.message)
            else signedBy = verified.right.verifiedBy
          }
          return {
            id: manifest.id,
            version: manifest.version,
            ok: problems.length === 0,
            artifacts,
            signedBy,
            problems
          } satisfies VerifyReport
        }
      )

      /** Stores and pins the files (or re-hashes the stored blobs) and returns the manifest signed by `request.signer`. */
      const publish = (request: PublishRequest): Effect.Effect<ModelManifest, ModelsFailure> =>
        Effect.provideService(buildManifest(request), BlobStore, store).pipe(
          Effect.mapError(modelsFailure),
          Effect.withSpan("Models.publish")
        )

      /** A held model's manifest, as its publisher signed it. */
      const manifest = (id: string, version?: string) =>
        Effect.mapError(readManifest(store.root, id, version), modelsFailure)

      return { pull: pullModel, pullStream, verify, publish, manifest, store, trust } as const
    })
}) {}
