/**
 * The node's HTTP API as an @effect/platform HttpApi: one definition gives the routes, the decoding
 * of parameters and the OpenAPI document served at /docs.
 */
import { HttpApi, HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Balance } from "../actors/economy/Ledger.js"
import { AccountId } from "../domain/Money.js"
import { DeadLetter } from "../events/Checkpoints.js"
import { Envelope } from "../events/EnvelopeSchema.js"
import { ChainHeadView } from "../layers/NodeStatus.js"
import { ContentApi } from "./ContentApi.js"
import { OpenAiApi } from "./OpenAiApi.js"
import { RegistryApi } from "./RegistryApi.js"

/** 200 while the node serves; "degraded" when a policy gave up on an event (its dead letters say which). */
export const Health = Schema.Struct({
  status: Schema.Literal("ok", "degraded"),
  nodeId: Schema.String,
  head: ChainHeadView,
  deadLetterCount: Schema.Number,
  deadLetters: Schema.Array(DeadLetter)
})

export const EventsPage = Schema.Struct({
  events: Schema.Array(Envelope),
  /** Pass as `from` to read the page after this one. */
  next: Schema.Number,
  head: Schema.Number
})

export const MAX_EVENTS_PAGE = 1_000

export const EventsQuery = Schema.Struct({
  from: Schema.optionalWith(Schema.NumberFromString.pipe(Schema.int(), Schema.greaterThanOrEqualTo(1)), {
    default: () => 1
  }),
  limit: Schema.optionalWith(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, MAX_EVENTS_PAGE)), {
    default: () => 100
  })
})

export class SystemApi extends HttpApiGroup.make("system").add(
  HttpApiEndpoint.get("health", "/health").addSuccess(Health)
) {}

export class EventsApi extends HttpApiGroup.make("events").add(
  HttpApiEndpoint.get("list", "/v1/events")
    .setUrlParams(EventsQuery)
    .addSuccess(EventsPage)
    .annotate(OpenApi.Description, "The audit feed: the journal in global order, from `from` (inclusive), with hashes.")
) {}

export class LedgerApi extends HttpApiGroup.make("ledger").add(
  HttpApiEndpoint.get("balance", "/v1/ledger/accounts/:account")
    .setPath(Schema.Struct({ account: AccountId }))
    .addSuccess(Balance)
) {}

export class NodeApi extends HttpApi.make("edge-net")
  .add(SystemApi)
  .add(EventsApi)
  .add(LedgerApi)
  .add(ContentApi)
  .add(RegistryApi)
  .add(OpenAiApi)
  .annotate(OpenApi.Title, "edge-net node")
  .annotate(OpenApi.Version, "0.1.0")
  .annotate(
    OpenApi.Description,
    "HTTP API of an edge-net node. RPC (@effect/rpc, NDJSON over HTTP POST) is served at /rpc."
  )
{}
