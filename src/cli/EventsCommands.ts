/** `edge-net events tail`: the journal, in order, from a position; `--follow` keeps printing new events. */
import { Command, Options } from "@effect/cli"
import { Effect, Stream } from "effect"
import type { Envelope } from "../events/Envelope.js"
import { withNode } from "./NodeAccess.js"
import { NodeClient } from "./NodeClient.js"
import { dataOption, jsonOption, nodeOption } from "./Shared.js"

const from = Options.integer("from").pipe(
  Options.withDescription("first position to print (default: the last --limit events)"),
  Options.optional
)
const limit = Options.integer("limit").pipe(
  Options.withDescription("how many events to print (default 20)"),
  Options.withDefault(20)
)
const follow = Options.boolean("follow").pipe(
  Options.withAlias("f"),
  Options.withDescription("keep printing events as they are appended")
)

const line = (json: boolean) => (envelope: Envelope) =>
  json
    ? JSON.stringify(envelope)
    : `#${envelope.position}  ${envelope.recordedAt}  ${envelope.streamId} v${envelope.streamVersion}  ${envelope.eventType}  ${
      JSON.stringify(envelope.payload)
    }`

const tail = Command.make(
  "tail",
  { data: dataOption, node: nodeOption, json: jsonOption, from, limit, follow },
  ({ data, follow, from, json, limit, node }) =>
    withNode(
      data,
      node,
      Effect.gen(function*() {
        const client = yield* NodeClient
        const head = (yield* client.events(1, 1)).head
        const start = from._tag === "Some" ? Math.max(1, from.value) : Math.max(1, head - limit + 1)
        if (follow) {
          return yield* client.follow(start).pipe(
            Stream.runForEach((envelope) => Effect.sync(() => console.log(line(json)(envelope))))
          )
        }
        const page = yield* client.events(start, Math.max(1, Math.min(limit, 1_000)))
        for (const envelope of page.events) console.log(line(json)(envelope))
      })
    )
).pipe(Command.withDescription("print journal events in order (JSON lines with --json)"))

export const eventsCommand = Command.make("events").pipe(
  Command.withDescription("read the journal"),
  Command.withSubcommands([tail])
)
