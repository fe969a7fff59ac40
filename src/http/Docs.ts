/**
 * GET /docs: Swagger UI on the node's OpenAPI document (the document itself is served at
 * /docs/openapi.json by the API's router, Server.ts).
 */
import { HttpLayerRouter } from "@effect/platform"
import { Effect, Layer, Scope } from "effect"
import { NodeApi } from "./Api.js"

/**
 * The page holds all of Swagger UI's script, 3.4 MB as a string, and its module's source as much
 * again: loaded on the first request for the page, it stays out of the heap of a node nobody reads
 * the docs of. The first request waits for the import (tens of milliseconds); the page is built once,
 * and kept.
 */
export const DocsRoute = Layer.scopedDiscard(Effect.gen(function*() {
  const scope = yield* Effect.scope
  const page = yield* Effect.cached(
    Effect.promise(() => import("@effect/platform/HttpApiSwagger")).pipe(
      // On a router of its own: in the current memo map, the router layer is the node's, which has /docs.
      Effect.flatMap((swagger) =>
        HttpLayerRouter.toHttpEffect(swagger.layerHttpLayerRouter({ api: NodeApi, path: "/docs" })).pipe(
          Effect.provideServiceEffect(Layer.CurrentMemoMap, Layer.makeMemoMap)
        )
      ),
      Scope.extend(scope)
    )
  )
  const router = yield* HttpLayerRouter.HttpRouter
  yield* router.add("GET", "/docs", Effect.flatten(page))
}))
