/**
 * The dashboard every node serves at /ui (/ redirects there): one HTML page, its browser bundle and
 * the browser SDK (DashboardBundle.ts: /ui/sdk.js), its service worker (/ui/sw.js, scope /ui: the page
 * works offline after a first visit), onnxruntime-web's own files for the SDK under
 * /ui/ort/ (from the installed package: no CDN), and GET /v1/events/stream, the journal as server-sent events (catch-up from
 * `from` or `Last-Event-ID`, then live), which the page's live feed, market and audit views read.
 */
import type { HttpServerRequest } from "@effect/platform"
import { HttpLayerRouter, HttpServerResponse } from "@effect/platform"
import { Duration, Effect, Layer, Schedule, Stream } from "effect"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Journal } from "../events/Journal.js"
import { NodeServer } from "./BoundedServer.js"
import { buildDashboard, BUNDLE_FILES, type DashboardBundle, readDashboard } from "./DashboardBundle.js"

/**
 * The dashboard nearest this module, walking up: at the first folder that has one, its sources
 * (`src/ui`, a checkout: always as fresh as they are) or else its built bundle (`dist/ui`, a package
 * or a compiled tree).
 */
const findDashboard = (): { readonly sources: string } | { readonly built: string } | undefined => {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  for (;;) {
    if (fs.existsSync(path.join(dir, "src", "ui", "Main.ts"))) return { sources: path.join(dir, "src", "ui") }
    if (fs.existsSync(path.join(dir, "dist", "ui", "app.js"))) return { built: path.join(dir, "dist", "ui") }
    const parent = path.dirname(dir)
    if (parent === dir) return undefined
    dir = parent
  }
}

const loadBundle = async (): Promise<DashboardBundle> => {
  const found = findDashboard()
  const bundle = found === undefined
    ? undefined
    : "sources" in found
    ? await buildDashboard(found.sources)
    : readDashboard(found.built)
  if (bundle === undefined) throw new Error("the dashboard was not built: run npm run build")
  return bundle
}

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edge-net node</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/ui/app.css">
</head>
<body>
<div id="app"><p class="loading">loading the dashboard...</p></div>
<script type="module" src="/ui/app.js"></script>
</body>
</html>
`

/**
 * The page may talk to this node only; it runs no inline script and loads nothing from elsewhere.
 * WebAssembly may compile (the playground runs onnxruntime-web), and workers come from this node.
 */
const PAGE_HEADERS = {
  "content-security-policy":
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "cache-control": "no-cache"
}

/** How often a stream checks whether the server is shutting down. */
const STOP_CHECK = Duration.millis(250)

/** How often a quiet stream sends a comment line. */
const SSE_HEARTBEAT = Duration.seconds(15)

/** Where a stream starts: `from`, else one past the browser's `Last-Event-ID` on a reconnect, else the head. */
const startOf = (request: HttpServerRequest.HttpServerRequest, head: number): number | string => {
  const url = new URL(request.url, "http://node")
  const from = url.searchParams.get("from")
  const lastId = request.headers["last-event-id"]
  if (lastId !== undefined && /^\d{1,15}$/.test(lastId)) return Number(lastId) + 1
  if (from === null) return head + 1
  if (!/^\d{1,15}$/.test(from) || Number(from) < 1) {
    return `from must be a position of at least 1, got "${from.slice(0, 32)}"`
  }
  return Number(from)
}

const encoder = new TextEncoder()

/**
 * A stream that never ends would hold the server open at shutdown (Node's close waits for every
 * response): each stream ends, and its connection with it, once the server stops listening.
 */
const EventStreamRoute = HttpLayerRouter.use((router) =>
  Effect.gen(function*() {
    const server = yield* NodeServer
    const stopped = Effect.sync(() => server.listening).pipe(
      Effect.repeat({ schedule: Schedule.spaced(STOP_CHECK), until: (listening) => !listening })
    )
    yield* router.add("GET", "/v1/events/stream", (request) =>
      Effect.gen(function*() {
        const journal = yield* Journal
        const head = yield* journal.head
        const from = startOf(request, head.position)
        if (typeof from === "string") return HttpServerResponse.unsafeJson({ error: from }, { status: 400 })
        const events = journal.subscribe(from).pipe(
          Stream.map((envelope) => `id: ${envelope.position}\nevent: journal\ndata: ${JSON.stringify(envelope)}\n\n`)
        )
        // A comment line now and then keeps proxies from closing a quiet stream.
        const heartbeat = Stream.fromSchedule(Schedule.spaced(SSE_HEARTBEAT)).pipe(Stream.as(": heartbeat\n\n"))
        const body = Stream.merge(Stream.make(`: from ${from}\n\n`).pipe(Stream.concat(events)), heartbeat, {
          haltStrategy: "left"
        }).pipe(Stream.interruptWhen(stopped), Stream.map((text) => encoder.encode(text)))
        return HttpServerResponse.stream(body, {
          contentType: "text/event-stream",
          // The connection goes with the stream: a browser reconnecting after shutdown must find no
          // kept-alive socket to send its next request on.
          headers: { "cache-control": "no-cache", "x-accel-buffering": "no", connection: "close" }
        })
      }))
  })
)

const pageResponse = Effect.succeed(HttpServerResponse.text(PAGE, { contentType: "text/html", headers: PAGE_HEADERS }))

const contentTypeOf = (file: string) =>
  file.endsWith(".css")
    ? "text/css"
    : file.endsWith(".wasm")
    ? "application/wasm"
    : "text/javascript"

/**
 * The onnxruntime-web files the SDK loads: the WebAssembly build and the WebGPU one, each with its
 * Emscripten module and binary (single-threaded pages use the same files).
 */
export const ORT_FILES = [
  "ort.wasm.min.mjs",
  "ort-wasm-simd-threaded.mjs",
  "ort-wasm-simd-threaded.wasm",
  "ort.webgpu.min.mjs",
  "ort-wasm-simd-threaded.asyncify.mjs",
  "ort-wasm-simd-threaded.asyncify.wasm"
] as const

/** onnxruntime-web's dist folder, as this module resolves the package. */
const ortDirectory = () => path.dirname(createRequire(import.meta.url).resolve("onnxruntime-web"))

const AssetRoutes = HttpLayerRouter.use((router) =>
  Effect.gen(function*() {
    // Built on the first request, once.
    const bundle = yield* Effect.cachedFunction((_: "bundle") => Effect.promise(loadBundle))
    const asset = (file: string) =>
      Effect.flatMap(bundle("bundle"), (built) => {
        const contents = built.files.get(file)
        return contents === undefined
          ? Effect.succeed(HttpServerResponse.unsafeJson({ error: `${file} is not built` }, { status: 404 }))
          : Effect.succeed(HttpServerResponse.uint8Array(contents, {
            contentType: contentTypeOf(file),
            headers: {
              "cache-control": "no-cache",
              "x-content-type-options": "nosniff",
              // The worker sits in /ui/ and serves the page at /ui, one level up: its scope is /ui.
              ...(file === "sw.js" ? { "service-worker-allowed": "/ui" } : {})
            }
          }))
      })
    // Read on first request and kept: they change only with the installed package.
    const ortFile = yield* Effect.cachedFunction((file: string) =>
      Effect.sync(() => new Uint8Array(fs.readFileSync(path.join(ortDirectory(), file))))
    )
    const ort = (file: string) =>
      Effect.map(ortFile(file), (contents) =>
        HttpServerResponse.uint8Array(contents, {
          contentType: contentTypeOf(file),
          headers: { "cache-control": "public, max-age=3600", "x-content-type-options": "nosniff" }
        }))
    yield* router.add("GET", "/ui", pageResponse)
    for (const file of BUNDLE_FILES) yield* router.add("GET", `/ui/${file}`, asset(file))
    for (const file of ORT_FILES) yield* router.add("GET", `/ui/ort/${file}`, ort(file))
    yield* router.add("GET", "/", Effect.succeed(HttpServerResponse.redirect("/ui", { status: 302 })))
  })
)

/** The dashboard's routes on the node's router. */
export const DashboardRoutes = Layer.mergeAll(AssetRoutes, EventStreamRoute)
