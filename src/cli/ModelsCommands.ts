/**
 * `edge-net-models` (also `edge-net models`), the seed's model CLI: list, pull, verify and info here;
 * publish, sign and keys in PublishCommands; cache and config in CacheCommands.
 */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Either, Option } from "effect"
import * as fs from "node:fs"
import { readModelFile } from "../compute/onnx/ExternalData.js"
import { formatSummary, summarize } from "../compute/onnx/Summary.js"
import { describeFile } from "../content/ArtifactSignature.js"
import { BlobStore } from "../content/BlobStore.js"
import { readManifest } from "../content/LocalModels.js"
import type { ModelManifest } from "../content/Manifest.js"
import { manifestBytes, parseManifest } from "../content/Manifest.js"
import type { PullReceiptView, VerifyReport } from "../content/Models.js"
import { Models } from "../content/Models.js"
import { fetchManifest } from "../content/RegistryTransfer.js"
import { CliError } from "./CliError.js"
import {
  configOption,
  ModelsSettings,
  parseReference,
  registryOption,
  registryUrl,
  withModels
} from "./ModelsContext.js"
import { withModelsService } from "./ModelsTrust.js"
import { formatBytes, progressReporter } from "./Progress.js"
import { jsonOption, output } from "./Shared.js"

const sourceOption = Options.choice("source", ["http", "ipfs", "peer", "gcs", "cdn"]).pipe(
  Options.withDescription(
    "take bytes only from the CDN (http), IPFS gateways, or peers (default: all of them at once)"
  ),
  Options.optional
)

export const describePull = (receipt: typeof PullReceiptView.Type) =>
  [
    `pulled ${receipt.id}@${receipt.version} (signed by ${receipt.verifiedBy.join(", ")})`,
    ...receipt.artifacts.map((a) => {
      const from = a.cached
        ? "already cached"
        : a.sources.filter((s) => s.bytes > 0).map((s) => `${s.name}: ${formatBytes(s.bytes)}`).join(", ")
      const resumed = a.bytesReused > 0 && !a.cached ? `, ${formatBytes(a.bytesReused)} resumed` : ""
      return `  ${a.filename}  ${formatBytes(a.size)}  ${a.digest.slice(0, 19)}  ${from}${resumed}`
    }),
    ...receipt.artifacts.flatMap((a) => a.dropped.map((d) => `  dropped ${d.source}: ${d.reason}`)),
    ...(receipt.output === undefined ? [] : [`  written to ${receipt.output}`])
  ].join("\n")

export const pullCommand = Command.make(
  "pull",
  {
    model: Args.text({ name: "id[@version]" }),
    version: Options.text("model-version").pipe(
      Options.withDescription("the version to pull (also --version)"),
      Options.optional
    ),
    source: sourceOption,
    output: Options.directory("output").pipe(
      Options.withDescription("also write the files (and manifest.json) here"),
      Options.optional
    ),
    allowRollback: Options.boolean("allow-rollback").pipe(
      Options.withDescription("accept a version older than one trusted before")
    ),
    registry: registryOption,
    config: configOption,
    json: jsonOption
  },
  (args) =>
    withModelsService(
      args.config,
      Effect.gen(function*() {
        const { config } = yield* ModelsSettings
        const models = yield* Models
        const reference = parseReference(args.model)
        const source = Option.getOrUndefined(args.source)
        const kind = source === "gcs" || source === "cdn" ? "http" : source
        const defaultKind = config.defaultSource === "gcs" || config.defaultSource === "cdn"
          ? "http"
          : config.defaultSource
        const kinds = kind !== undefined ? [kind] : defaultKind === "auto" ? [] : [defaultKind]
        const progress = progressReporter(args.json)
        const receipt = yield* models.pull(
          {
            id: reference.id,
            version: Option.getOrUndefined(args.version) ?? reference.version,
            registry: yield* registryUrl(args.registry),
            sources: kinds,
            output: Option.getOrUndefined(args.output),
            allowRollback: args.allowRollback,
            onProgress: progress.update,
            onSourceDropped: (report) => {
              progress.done()
              if (args.json) console.log(JSON.stringify({ event: "source-dropped", ...report }))
              else console.error(`edge-net-models: dropped ${report.source}: ${report.reason}`)
            }
          }
        ).pipe(Effect.ensuring(Effect.sync(progress.done)))
        yield* output(args.json, { event: "done", ...receipt }, describePull)
      })
    )
).pipe(Command.withDescription("download a model, verified piece by piece, resuming where a killed pull stopped"))

/** The one-line refusal of a model that failed verification, here or on a node. */
export const verificationFailed = (report: VerifyReport) =>
  `${report.id}@${report.version} failed verification: ${report.problems.join("; ")}`

export const verifiedLine = (report: VerifyReport) =>
  `${report.id}@${report.version}: ${report.artifacts.length} artifact(s) verified (sha256 and CID)` +
  (report.signedBy.length > 0 ? `, signed by ${report.signedBy.join(", ")}` : "")

export const verifyCommand = Command.make(
  "verify",
  {
    model: Args.text({ name: "id[@version]" }),
    checkSignature: Options.boolean("check-signature"),
    config: configOption,
    json: jsonOption
  },
  ({ checkSignature, config, json, model }) =>
    withModelsService(
      config,
      Effect.gen(function*() {
        const models = yield* Models
        const report = yield* models.verify(parseReference(model), checkSignature)
        if (json) yield* output(true, report, () => "")
        if (!report.ok) return yield* Effect.fail(new CliError({ message: verificationFailed(report) }))
        if (!json) yield* output(false, report, verifiedLine)
      })
    )
).pipe(
  Command.withDescription(
    "re-hash a pulled model's files and, with --check-signature, check its signatures against trusted keys"
  )
)

const fileSummary = (file: string) =>
  describeFile(file).pipe(
    Effect.map((described) => ({ file, ...described })),
    Effect.mapError((error) => new CliError({ message: error.message }))
  )

const describeManifest = (manifest: ModelManifest, benchmarks: boolean, requirements: boolean) =>
  [
    `${manifest.id}@${manifest.version}  ${manifest.name}`,
    `  type ${manifest.type}${manifest.family === undefined ? "" : `, family ${manifest.family}`}, ` +
    `${manifest.optimization?.quantization ?? "FP32"}${
      manifest.optimization?.format === undefined ? "" : ` (${manifest.optimization.format})`
    }, ${formatBytes(manifestBytes(manifest))}`,
    `  published ${manifest.publishedAt} by ${manifest.publishedBy}, expires ${manifest.expiresAt}, license ${manifest.license}`,
    ...Object.entries(manifest.artifacts).map(([name, a]) =>
      `  ${name}: ${a.filename} ${formatBytes(a.size)} sha256:${a.sha256.slice(0, 12)} ${a.cid}`
    ),
    ...(benchmarks ? [`  benchmarks: ${JSON.stringify(manifest.benchmarks ?? {})}`] : []),
    ...(requirements ? [`  requirements: ${JSON.stringify(manifest.requirements ?? {})}`] : [])
  ].join("\n")

export const infoCommand = Command.make(
  "info",
  {
    target: Args.text({ name: "id[@version]|file" }),
    benchmarks: Options.boolean("benchmarks"),
    requirements: Options.boolean("requirements"),
    registry: registryOption,
    config: configOption,
    json: jsonOption
  },
  ({ benchmarks, config, json, registry, requirements, target }) =>
    withModels(
      config,
      Effect.gen(function*() {
        if (fs.existsSync(target) && fs.statSync(target).isFile()) {
          const file = yield* fileSummary(target)
          const digests = `${file.file}: ${formatBytes(file.size)}\n  sha256 ${file.sha256}\n  cid    ${file.cid}`
          if (!target.endsWith(".onnx")) return yield* output(json, file, () => digests)
          const model = yield* readModelFile(target).pipe(
            Effect.mapError((error) => new CliError({ message: error.message }))
          )
          const onnx = summarize(model, { fileSize: file.size })
          return yield* output(json, { ...file, onnx }, () => `${digests}\n${formatSummary(onnx)}`)
        }
        const reference = parseReference(target)
        const local = yield* Effect.either(readManifest((yield* BlobStore).root, reference.id, reference.version))
        const manifest = Either.isRight(local)
          ? local.right
          : yield* Effect.flatMap(fetchManifest(yield* registryUrl(registry), reference.id, reference.version), (raw) =>
            Either.mapLeft(parseManifest(raw), (error) => new CliError({ message: error.message })))
        const view = json && (benchmarks || requirements)
          ? {
            id: manifest.id,
            version: manifest.version,
            ...(benchmarks ? { benchmarks: manifest.benchmarks ?? {} } : {}),
            ...(requirements ? { requirements: manifest.requirements ?? {} } : {})
          }
          : manifest
        yield* output(json, view, () =>
          describeManifest(manifest, benchmarks, requirements))
      })
    )
).pipe(
  Command.withDescription(
    "a model's manifest (cache first, then the registry), or a file's size, sha256 and CID (for ONNX: operators, parameters, tensor sizes)"
  )
)
