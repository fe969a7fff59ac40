/** `edge-net-models publish|sign|keys`: describe and sign model files, send them to a registry, manage publisher keys. */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Either, Option } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { describeFile, signArtifact } from "../content/ArtifactSignature.js"
import { parseManifestText } from "../content/Manifest.js"
import { completeManifest, isManifestText, looksLikeManifest } from "../content/ManifestDraft.js"
import { signAsPublisher, signManifest } from "../content/ManifestSigning.js"
import { Models } from "../content/Models.js"
import { expandHome } from "../content/ModelsConfig.js"
import { buildManifestFromDraft, pushToRegistry } from "../content/Publish.js"
import { TrustStore } from "../content/TrustStore.js"
import { accountIdOf } from "../domain/Ed25519.js"
import { CliError } from "./CliError.js"
import { configOption, ModelsSettings, registryOption, registryUrl } from "./ModelsContext.js"
import { withModelsService, withTrust } from "./ModelsTrust.js"
import { jsonOption, output, toJson } from "./Shared.js"

export const keyOption = Options.text("key").pipe(
  Options.withDescription(
    "signing key: a key id in the trust store or a key file (our JSON or a PKCS8 PEM); default `signing` in models.yaml"
  ),
  Options.optional
)

/** The signer named by `--key`, else the config's `signing.keyPath` / `signing.keyId`. */
export const signerFor = (key: Option.Option<string>) =>
  Effect.gen(function*() {
    const trust = yield* TrustStore
    const { config } = yield* ModelsSettings
    if (Option.isSome(key)) return yield* trust.signer(expandHome(key.value))
    const configured = expandHome(config.signing.keyPath)
    return yield* (fs.existsSync(configured)
      ? trust.signer(configured, config.signing.keyId)
      : trust.signer(config.signing.keyId))
  })

/** Reads the start of a file: manifest text begins with `{` (or a comment), a model file never does. */
const holdsManifest = (file: string) => {
  const head = Buffer.alloc(64)
  const descriptor = fs.openSync(file, "r")
  try {
    return looksLikeManifest(head.subarray(0, fs.readSync(descriptor, head, 0, head.length, 0)).toString("latin1"))
  } finally {
    fs.closeSync(descriptor)
  }
}

const printWarnings = (warnings: ReadonlyArray<string>) =>
  Effect.sync(() => {
    for (const warning of warnings) console.error(`edge-net-models: warning: ${warning}`)
  })

const publish = Command.make(
  "publish",
  {
    files: Args.file({ name: "file", exists: "yes" }).pipe(
      Args.withDescription(
        "the model's files, or one manifest.json written by hand (seed 4.4) whose artifacts are the files beside it"
      ),
      Args.atLeast(1)
    ),
    name: Options.text("name").pipe(Options.optional),
    version: Options.text("model-version").pipe(
      Options.withDescription("semantic version of this release (also --version)"),
      Options.optional
    ),
    type: Options.text("type").pipe(
      Options.withDescription("text-generation, embedding, vision, ..."),
      Options.optional
    ),
    id: Options.text("id").pipe(Options.withDescription("model id (default: from --name)"), Options.optional),
    family: Options.text("family").pipe(Options.optional),
    quantization: Options.choice("quantization", ["FP32", "FP16", "INT8", "INT4"]).pipe(Options.optional),
    license: Options.text("license").pipe(Options.withDefault("unknown")),
    homepage: Options.text("homepage").pipe(Options.optional),
    cdn: Options.text("cdn").pipe(
      Options.withDescription("base URL of a CDN that serves <cdn>/<id>/v<version>/<file>"),
      Options.optional
    ),
    expiresIn: Options.integer("expires-in-days").pipe(Options.withDefault(365)),
    manifestOut: Options.file("manifest-out").pipe(
      Options.withDescription("also write the signed manifest here"),
      Options.optional
    ),
    key: keyOption,
    registry: registryOption,
    config: configOption,
    json: jsonOption
  },
  (args) =>
    withModelsService(
      args.config,
      Effect.gen(function*() {
        const [first = ""] = args.files
        const [name, version, type] = [args.name, args.version, args.type].map(Option.getOrUndefined)
        const release = name !== undefined && version !== undefined && type !== undefined
          ? { name, version, type }
          : undefined
        if (release === undefined && !(args.files.length === 1 && holdsManifest(first))) {
          return yield* Effect.fail(
            new CliError({
              message: "publish needs --name, --version and --type (or one manifest.json that says them)"
            })
          )
        }
        const signer = yield* signerFor(args.key)
        const { manifest, warnings } = release === undefined ?
          yield* buildManifestFromDraft(first, signer, args.expiresIn) :
          {
            warnings: [],
            manifest: yield* (yield* Models).publish({
              files: args.files,
              ...release,
              id: Option.getOrUndefined(args.id),
              family: Option.getOrUndefined(args.family),
              quantization: Option.getOrUndefined(args.quantization),
              license: args.license,
              homepage: Option.getOrUndefined(args.homepage),
              cdn: Option.getOrUndefined(args.cdn),
              expiresInDays: args.expiresIn,
              signer
            })
          }
        yield* printWarnings(warnings)
        if (Option.isSome(args.manifestOut)) {
          fs.writeFileSync(args.manifestOut.value, JSON.stringify(manifest, null, 2) + "\n")
        }
        const registry = yield* registryUrl(args.registry)
        const uploaded = yield* pushToRegistry(registry, manifest)
        yield* output(args.json, { registry, uploaded, manifest }, () =>
          `published ${manifest.id}@${manifest.version} to ${registry} (signed by ${signer.keyId}; uploaded ${uploaded.length} of ${
            Object.keys(manifest.artifacts).length
          } file(s))`)
      })
    )
).pipe(Command.withDescription("store, describe and sign model files, then publish them to a registry node"))

const sign = Command.make(
  "sign",
  {
    file: Args.file({ name: "manifest.json|model-file", exists: "yes" }),
    key: keyOption,
    output: Options.file("output").pipe(
      Options.withDescription("a manifest: write the signed manifest here (default: in place)"),
      Options.optional
    ),
    expiresIn: Options.integer("expires-in-days").pipe(
      Options.withDescription("a manifest without expiresAt: how long it stays valid"),
      Options.withDefault(365)
    ),
    config: configOption
  },
  (args) =>
    withTrust(
      args.config,
      Effect.gen(function*() {
        const signer = yield* signerFor(args.key)
        const text = holdsManifest(args.file) ? fs.readFileSync(args.file, "utf8") : undefined
        if (text === undefined || !isManifestText(text)) {
          const signed = yield* signArtifact(args.file, signer).pipe(
            Effect.mapError((error) => new CliError({ message: error.message }))
          )
          return yield* Effect.sync(() =>
            console.log(
              `signed ${args.file} (${signed.signature.size} bytes, sha256 ${signed.signature.sha256}) with ${signer.keyId} -> ${signed.file}`
            )
          )
        }
        const parsed = parseManifestText(text)
        // A complete manifest gets one more signature (k-of-n); one written by hand is completed from the files beside it first.
        const { signed, warnings } = Either.isRight(parsed)
          ? { signed: signManifest(parsed.right, signer), warnings: [] }
          : yield* completeManifest(text, {
            directory: path.dirname(args.file),
            signer,
            describe: describeFile,
            expiresInDays: args.expiresIn
          }).pipe(
            Effect.map(({ manifest, warnings }) => ({ signed: signAsPublisher(manifest, signer), warnings })),
            Effect.mapError((error) => new CliError({ message: `${args.file}: ${error.message}` }))
          )
        yield* printWarnings(warnings)
        const target = Option.getOrElse(args.output, () => args.file)
        fs.writeFileSync(target, JSON.stringify(signed, null, 2) + "\n")
        yield* Effect.sync(() =>
          console.log(
            `signed ${signed.id}@${signed.version} with ${signer.keyId} (${
              signed.signatures?.length ?? 0
            } signature(s)) -> ${target}`
          )
        )
      })
    )
).pipe(
  Command.withDescription(
    "sign a model file (writes <file>.sig) or a manifest (adds a signature; several keys can sign one manifest: k-of-n)"
  )
)

const keysList = Command.make("list", { config: configOption, json: jsonOption }, ({ config, json }) =>
  withTrust(
    config,
    Effect.gen(function*() {
      const keys = yield* (yield* TrustStore).list()
      yield* output(json, keys.map((key) => ({ ...key, account: accountIdOf(key.publicKey) })), (rows) =>
        rows.length === 0
          ? "no trusted keys"
          : rows.map((k) =>
            `${k.keyId.padEnd(24)} ${k.publicKey}  account ${k.account}${k.canSign ? "  (can sign)" : ""}`
          ).join("\n"))
    })
  ))

const keysGenerate = Command.make("generate", {
  keyId: Args.text({ name: "key-id" }),
  config: configOption,
  json: jsonOption
}, ({ config, json, keyId }) =>
  withTrust(
    config,
    Effect.gen(function*() {
      const key = yield* (yield* TrustStore).generate(keyId)
      yield* output(json, { ...key, account: accountIdOf(key.publicKey) }, (k) =>
        `created signing key ${k.keyId}\npublic key ${k.publicKey}\naccount    ${k.account}\n(others trust it with: edge-net-models keys trust ${k.keyId} ${k.publicKey})`)
    })
  ))

const keysTrust = Command.make(
  "trust",
  { keyId: Args.text({ name: "key-id" }), publicKey: Args.text({ name: "public-key" }), config: configOption },
  ({ config, keyId, publicKey }) =>
    withTrust(
      config,
      Effect.gen(function*() {
        const key = yield* (yield* TrustStore).trust(keyId, publicKey.toLowerCase())
        yield* Effect.sync(() => console.log(`trusting ${key.keyId} ${key.publicKey}`))
      })
    )
)

const keysUntrust = Command.make(
  "untrust",
  { keyId: Args.text({ name: "key-id" }), config: configOption },
  ({ config, keyId }) =>
    withTrust(
      config,
      Effect.gen(function*() {
        const removed = yield* (yield* TrustStore).untrust(keyId)
        if (!removed) return yield* Effect.fail(new CliError({ message: `no trusted key ${keyId}` }))
        yield* Effect.sync(() => console.log(`no longer trusting ${keyId}`))
      })
    )
)

export const keysCommand = Command.make("keys").pipe(
  Command.withDescription("publisher keys: the trust store in ~/.edge-net/keys"),
  Command.withSubcommands([keysList, keysGenerate, keysTrust, keysUntrust])
)

export const publishCommand = publish
export const signCommand = sign
export { toJson }
