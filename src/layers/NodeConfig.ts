/**
 * Where a node keeps its state and where it listens. Resolved once at the edge (CLI flags, then
 * environment, then defaults) and handed to every layer that needs it.
 */
import { Context, Layer } from "effect"
import { availableParallelism } from "node:os"
import * as path from "node:path"
import type { Synchronous } from "../events/SqliteDatabase.js"

export interface NodeSettings {
  readonly dataDir: string
  readonly host: string
  readonly port: number
  readonly synchronous: Synchronous
  /** Cap of the node's blob store (`<data>/content`); published artifacts are pinned and never evicted. */
  readonly maxContentBytes?: number | undefined
  /** Parameter values applied at start while never changed (`EDGE_NET_GENESIS`, e.g. for a test network). */
  readonly genesisParameters?: Readonly<Record<string, bigint>> | undefined
  /** The network id every signed command must name (`EDGE_NET_NETWORK`; default `edge-net-dev`); fixed at genesis. */
  readonly network?: string | undefined
  /** Operator public keys named at genesis (`EDGE_NET_OPERATORS`, comma-separated; default the node's own key). */
  readonly operators?: ReadonlyArray<string> | undefined
  /** How many operator keys must sign an operator command (`EDGE_NET_OPERATOR_THRESHOLD`; default 1). */
  readonly operatorThreshold?: number | undefined
  /**
   * The economy's sequencer named at genesis (`EDGE_NET_SEQUENCER`): `self`, or another node's public key.
   * Unnamed, each node sequences its own economy.
   */
  readonly sequencer?: string | undefined
  /** Names besides loopback and `host` that clients reach this node by (`Host`), e.g. `node.lan` or `node.lan:8080`. */
  readonly allowedHosts?: ReadonlyArray<string> | undefined
  /** The URL clients reach this node at through a reverse proxy, e.g. `https://node.example.com`. */
  readonly publicUrl?: string | undefined
  /**
   * Origins besides the node's own whose pages may read its registry and blobs (`EDGE_NET_CORS_ORIGINS`,
   * `--cors-origin`), or `*` for any; reads only (GET, HEAD, OPTIONS), state changes stay same-origin.
   */
  readonly corsOrigins?: ReadonlyArray<string> | undefined
  /**
   * Whether a node publishes the reference models (FP32, INT8, INT4) into its own registry, in the
   * background once it listens, when they are not there yet (`EDGE_NET_FIRST_START_MODELS`, default on).
   */
  readonly firstStartModels?: boolean | undefined
  /** Only these catalog ids, when given (`EDGE_NET_FIRST_START_MODELS=tiny-encoder,tiny-lm`). */
  readonly firstStartIds?: ReadonlyArray<string> | undefined
  /**
   * The trust store of this machine's `edge-net-models` when its registry is this node: the node trusts
   * its own key there, so the models it published pull at once.
   */
  readonly cliTrustDir?: string | undefined
  /** Bounds on requests and connections; any left out takes its `DEFAULT_HTTP_LIMITS` value. */
  readonly httpLimits?: Partial<HttpLimits> | undefined
  /** The node as a libp2p peer; any left out takes its default (`p2pSettingsOf`). */
  readonly p2p?: Partial<P2pSettings> | undefined
  /** How the node serves inference (`/v1/embeddings`, `/v1/chat/completions`...); defaults in `inferenceSettingsOf`. */
  readonly inference?: Partial<InferenceSettings> | undefined
}

/** Bounds on the inference a node serves over HTTP. */
export interface InferenceSettings {
  /**
   * Model worker threads that run served inference (`EDGE_NET_INFERENCE_WORKERS`, default 2 on more
   * than 2 cores, else 0), started on the first request that needs a model; 0 runs models on the node's own thread,
   * where a model run holds up every HTTP request meanwhile. Each worker opens its own copy of a model.
   */
  readonly workers: number
  /**
   * Requests run at once (`EDGE_NET_INFERENCE_CONCURRENCY`, default one per worker, 1 without workers:
   * one model run already uses every core given to it).
   */
  readonly concurrency: number
  /** Requests waiting for a turn; one more is refused with 429 (`EDGE_NET_INFERENCE_QUEUE`, default 16). */
  readonly queue: number
  /** Models kept open in memory at once, in each worker (`EDGE_NET_INFERENCE_MODELS`, default 2). */
  readonly maxModels: number
  /**
   * An embedding model of the registry (`id[@version]`, `EDGE_NET_TASK_ENCODER`) that embeds a request
   * naming no adapter, so the adapter pool can choose the resident adapter nearest its task; unset, a
   * request without an adapter runs the base model.
   */
  readonly taskEncoder?: string | undefined
}

/**
 * Workers when not configured: 2 on a machine with more than 2 cores (each holds its own copy of every
 * model it runs), none on 2 cores or fewer. Measured on 2 shared cores (docs/serving.md), the node's
 * thread and two workers contend for the cores and serve less (one-text embeddings 0.35x of the
 * library in process, against 0.48x with models on the node's thread).
 */
export const defaultInferenceWorkers = () => (availableParallelism() > 2 ? 2 : 0)

export const DEFAULT_INFERENCE = { queue: 16, maxModels: 2 } as const

export const inferenceSettingsOf = (settings: Pick<NodeSettings, "inference">): InferenceSettings => {
  const workers = settings.inference?.workers ?? defaultInferenceWorkers()
  return {
    ...DEFAULT_INFERENCE,
    ...settings.inference,
    workers,
    concurrency: settings.inference?.concurrency ?? Math.max(1, workers)
  }
}

export interface P2pSettings {
  /** Multiaddrs to listen on (`EDGE_NET_P2P_LISTEN`); default TCP on the HTTP port + 1 and WebSockets on + 2. */
  readonly listen: ReadonlyArray<string>
  /** Multiaddrs with `/p2p/<peer id>` dialled at start (`EDGE_NET_BOOTSTRAP`, `--bootstrap`). */
  readonly bootstrap: ReadonlyArray<string>
  /** Peer ids whose journal feeds this node copies and verifies (`EDGE_NET_FOLLOW`, `--follow`). */
  readonly follow: ReadonlyArray<string>
}

/** The multiaddr of a listening host: an IPv4 or IPv6 literal as is, `localhost` as loopback, a name by DNS. */
const hostAddress = (host: string) =>
  host === "localhost"
    ? "/ip4/127.0.0.1"
    : /^[0-9.]+$/.test(host)
    ? `/ip4/${host}`
    : host.includes(":")
    ? `/ip6/${host.replace(/^\[|\]$/g, "")}`
    : `/dns/${host}`

export const p2pSettingsOf = (settings: Pick<NodeSettings, "host" | "port" | "p2p">): P2pSettings => {
  const base = hostAddress(settings.host)
  // An HTTP port picked by the system (0) makes the peer's ports picked by the system too.
  const offset = (n: number) => (settings.port === 0 ? 0 : settings.port + n)
  return {
    listen: settings.p2p?.listen ?? [`${base}/tcp/${offset(1)}`, `${base}/tcp/${offset(2)}/ws`],
    bootstrap: settings.p2p?.bootstrap ?? [],
    follow: settings.p2p?.follow ?? []
  }
}

/** What one client can make the HTTP server hold: body bytes, connections, time, header bytes. */
export interface HttpLimits {
  /** Largest request body on every route but blob uploads (those are bounded by the artifact's declared size). */
  readonly maxBodyBytes: number
  readonly maxConnections: number
  /** Requests served on one keep-alive connection before it is closed. */
  readonly maxRequestsPerSocket: number
  /** Time a client has to send its request headers. */
  readonly headersTimeoutMs: number
  /** Time a client has to send its whole request (blob uploads included). */
  readonly requestTimeoutMs: number
  readonly maxHeaderBytes: number
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  maxBodyBytes: 1024 * 1024,
  maxConnections: 1024,
  maxRequestsPerSocket: 1000,
  headersTimeoutMs: 20_000,
  requestTimeoutMs: 300_000,
  maxHeaderBytes: 16 * 1024
}

export const httpLimitsOf = (settings: Pick<NodeSettings, "httpLimits">): HttpLimits => ({
  ...DEFAULT_HTTP_LIMITS,
  ...settings.httpLimits
})

/** `*`, or an origin: a scheme (http or https) and host with no path; else what is wrong, in one line. */
export const corsOriginProblem = (entry: string): string | undefined => {
  if (entry === "*") return undefined
  if (!URL.canParse(entry)) return `"${entry}" is not an origin such as https://app.example or *`
  const url = new URL(entry)
  if (url.protocol !== "http:" && url.protocol !== "https:") return `"${entry}" is not an http or https origin`
  if (url.origin !== entry.replace(/\/$/, "").toLowerCase()) {
    return `"${entry}" is not an origin (scheme, host and port only, e.g. ${url.origin})`
  }
  return undefined
}

export const DEFAULT_NETWORK = "edge-net-dev"
export const DEFAULT_PORT = 7878
export const DEFAULT_HOST = "127.0.0.1"

export const journalFile = (settings: Pick<NodeSettings, "dataDir">) => path.join(settings.dataDir, "journal.db")
export const blobsDir = (settings: Pick<NodeSettings, "dataDir">) => path.join(settings.dataDir, "content")
export const keyFile = (settings: Pick<NodeSettings, "dataDir">) => path.join(settings.dataDir, "node.key")
/** The publisher keys a node trusts when it pulls a model (its operator adds them over RPC). */
export const trustDir = (settings: Pick<NodeSettings, "dataDir">) => path.join(settings.dataDir, "trust")

export class NodeConfig extends Context.Tag("edge-net/NodeConfig")<NodeConfig, NodeSettings>() {
  static readonly layer = (settings: NodeSettings) => Layer.succeed(NodeConfig, settings)
}
