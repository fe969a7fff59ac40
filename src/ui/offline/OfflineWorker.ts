/**
 * The dashboard's service worker (`/ui/sw.js`, scope `/ui`): the page, its bundle, the browser SDK,
 * onnxruntime-web's files and the model catalog are kept in the Cache API as the node serves them, so
 * after a first visit the dashboard opens, and its playground runs a model cached in IndexedDB, with
 * the node unreachable. The node comes first: the cache answers only when the node does not (or not
 * within NETWORK_WAIT_MS), so an online page is never stale. It imports nothing: the bundle is a
 * classic script, which every browser with service workers runs.
 */

const CACHE = "edge-net-ui"

/**
 * Fetched when the worker installs: the page and the small scripts it starts from, so a reload works
 * offline even though the first visit fetched them before the worker took control. onnxruntime-web's
 * files (14 MB and more) are kept when the playground first fetches them, not before.
 */
const SHELL = [
  "/ui",
  "/ui/app.js",
  "/ui/app.css",
  "/ui/sdk.js",
  "/ui/sdk-inference-worker.js",
  "/ui/sdk-lora-worker.js"
]

/** The catalog the playground lists, also read before the worker took control; a node may refuse it. */
const CATALOG = "/v1/models"

/** How long a request waits for the node, when the cache has an answer, before the cache gives it. */
const NETWORK_WAIT_MS = 4000

/**
 * What the cache keeps: the page and everything under /ui but this worker, and the catalog the
 * playground lists. Model manifests and blobs are not here: the SDK keeps them in IndexedDB, verified.
 */
const isKept = (url: URL): boolean =>
  url.pathname === "/ui" || (url.pathname.startsWith("/ui/") && url.pathname !== "/ui/sw.js") ||
  url.pathname === CATALOG

/** A whole same-origin 200 is kept; a ranged, failed or opaque answer is not. */
const isKeepable = (response: Response) => response.status === 200 && response.type === "basic"

const wait = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * The answer to a kept request: the node's when it comes in time, else (or when it fails) the cached
 * one, else the failure; and the write of the node's answer to the cache, which the worker stays
 * alive for even when the cache answered first.
 */
const answer = (request: Request): { readonly response: Promise<Response>; readonly stored: Promise<unknown> } => {
  const cache = caches.open(CACHE)
  const fresh = Promise.all([fetch(request), cache]).then(([response, opened]) => ({
    response,
    stored: isKeepable(response) ? opened.put(request, response.clone()) : undefined
  }))
  const fromNode = fresh.then(({ response }) => response)
  const response = cache.then(async (opened) => {
    // The node's answers vary by Origin and Accept-Encoding; a cached answer serves either.
    const cached = await opened.match(request, { ignoreVary: true })
    if (cached === undefined) return fromNode
    return Promise.race([fromNode.catch(() => cached), wait(NETWORK_WAIT_MS).then(() => cached)])
  })
  return { response, stored: fresh.then(({ stored }) => stored).catch(() => undefined) }
}

const start = (scope: ServiceWorkerGlobalScope) => {
  scope.addEventListener("install", (event) => {
    // A new worker takes over at once: every version of it keeps the same files the same way.
    event.waitUntil(
      caches.open(CACHE)
        .then((cache) => Promise.all([cache.addAll(SHELL), cache.add(CATALOG).catch(() => undefined)]))
        .then(() => scope.skipWaiting())
    )
  })
  scope.addEventListener("activate", (event) => {
    // The page that registered the worker is served by it from now on, not only after a reload.
    event.waitUntil(scope.clients.claim())
  })
  scope.addEventListener("fetch", (event) => {
    const request = event.request
    const url = new URL(request.url)
    if (request.method !== "GET" || url.origin !== scope.location.origin || !isKept(url)) return
    const { response, stored } = answer(request)
    event.respondWith(response)
    event.waitUntil(stored)
  })
}

const isServiceWorkerScope = (scope: WorkerGlobalScope): scope is ServiceWorkerGlobalScope =>
  "registration" in scope && "clients" in scope

if (isServiceWorkerScope(self)) start(self)
