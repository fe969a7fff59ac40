/**
 * The SDK's inference worker (`/ui/sdk-inference-worker.js`): an InferenceSession opened off the
 * page's thread, so a long embedding or generation never freezes the page. One model per worker.
 */
import { InferenceSession } from "./InferenceSession.js"
import type { InferenceReply, InferenceRequest } from "./InferenceWorkerProtocol.js"

interface WorkerScope {
  onmessage: ((event: MessageEvent<InferenceRequest>) => void) | null
  postMessage: (message: InferenceReply, transfer?: Array<Transferable>) => void
}

const scope: WorkerScope = globalThis as typeof globalThis & WorkerScope
let session: Promise<InferenceSession> | undefined

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error))

scope.onmessage = (event) => {
  const request = event.data
  if (request.type === "open") {
    session = InferenceSession.create(request.model, request.options)
    session.then(
      (opened) => scope.postMessage({ type: "opened", backend: opened.backend, kind: opened.kind }),
      (error: unknown) => scope.postMessage({ type: "failed", id: undefined, message: messageOf(error) })
    )
    return
  }
  const id = request.id
  if (session === undefined) {
    scope.postMessage({ type: "failed", id, message: "the inference worker has no model open" })
    return
  }
  session.then(async (opened) => {
    if (request.type === "embed") {
      const vectors = await opened.embed(request.texts, request.config)
      scope.postMessage({ type: "embedded", id, vectors }, vectors.map((vector) => vector.buffer))
    } else {
      scope.postMessage({ type: "generated", id, text: await opened.generate(request.prompt, request.config) })
    }
  }).catch((error: unknown) => scope.postMessage({ type: "failed", id, message: messageOf(error) }))
}
