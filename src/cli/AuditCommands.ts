/**
 * `edge-net audit verify|replay|explain`: check the journal's chain and signatures; rebuild state from
 * the log; tell one entity's story from its events.
 */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Layer, Option } from "effect"
import * as fs from "node:fs"
import type { NetworkCharter } from "../actors/network/CharterService.js"
import type { Journal } from "../events/Journal.js"
import { feedServices } from "../layers/Node.js"
import type { ExplainView } from "../layers/NodeAudit.js"
import { NodeAudit } from "../layers/NodeAudit.js"
import { feedFile, publicKeyOfPeerId } from "../net/PeerBook.js"
import { verifyWithCommands } from "../rpc/NodeRpcHandlers.js"
import { CliError } from "./CliError.js"
import { parseAccount } from "./CommandKeys.js"
import { withNode } from "./NodeAccess.js"
import { NodeClient } from "./NodeClient.js"
import { dataOption, jsonOption, nodeOption, output, settingsFor } from "./Shared.js"

const feedOption = Options.text("feed").pipe(
  Options.withDescription(
    "audit the verified copy of this peer's feed (a peer id this node follows) instead of the node's own journal"
  ),
  Options.optional
)

/**
 * Runs `use` on the copy of `peerId`'s feed in the data dir: the same audit as a node's own, on a
 * journal nothing writes to, trusting the heads signed by the key the peer id names.
 */
const onFeed = <A, E>(
  data: Option.Option<string>,
  node: Option.Option<string>,
  peerId: string,
  use: Effect.Effect<A, E, NodeAudit | Journal | NetworkCharter>
) =>
  Effect.gen(function*() {
    if (Option.isSome(node)) {
      return yield* Effect.fail(new CliError({ message: "--feed audits the copy in the data dir: leave out --node" }))
    }
    const publicKey = publicKeyOfPeerId(peerId)
    if (publicKey === undefined) {
      return yield* Effect.fail(
        new CliError({
          message: `invalid --feed "${peerId}": expected the peer id of an Ed25519 key, e.g. 12D3KooW...`
        })
      )
    }
    const settings = yield* settingsFor(data)
    const file = feedFile(settings.dataDir, peerId)
    if (!fs.existsSync(file)) {
      return yield* Effect.fail(
        new CliError({
          message:
            `no copy of ${peerId}'s feed in ${settings.dataDir}: follow it first (edge-net peers add ADDRESS --follow, or node start --follow ${peerId})`
        })
      )
    }
    const services = feedServices(settings, { file, publicKey }).pipe(
      Layer.catchAll((error) => Layer.fail(new CliError({ message: error.message })))
    )
    return yield* Effect.provide(use, services)
  })

const verifyReport = (data: Option.Option<string>, node: Option.Option<string>, feed: Option.Option<string>) =>
  Option.isSome(feed)
    ? onFeed(data, node, feed.value, Effect.flatMap(NodeAudit, (audit) => verifyWithCommands(audit.verify())))
    : withNode(data, node, Effect.flatMap(NodeClient, (client) => client.verify))

const replayReport = (data: Option.Option<string>, node: Option.Option<string>, feed: Option.Option<string>) =>
  Option.isSome(feed)
    ? onFeed(data, node, feed.value, Effect.flatMap(NodeAudit, (audit) => audit.replay()))
    : withNode(data, node, Effect.flatMap(NodeClient, (client) => client.replay))

const verify = Command.make(
  "verify",
  { data: dataOption, node: nodeOption, json: jsonOption, feed: feedOption },
  ({ data, feed, json, node }) =>
    Effect.gen(function*() {
      const report = yield* verifyReport(data, node, feed)
      yield* output(json, report, (r) =>
        r.ok
          ? `chain ok: ${r.eventsChecked} events, ${r.headsChecked} signed heads, head ${r.head.position} ${r.head.hash}\n` +
            `commands ok: ${r.commandsChecked} signed commands verified, ${r.ownerEventsChecked} debits, holds, stakes, votes and bids signed by their owners`
          : `audit FAILED at position ${r.firstBadPosition}: ${r.problem}`)
      if (!report.ok) {
        return yield* Effect.fail(
          new CliError({ message: `audit verify found a problem at position ${report.firstBadPosition}` })
        )
      }
    })
).pipe(
  Command.withDescription(
    "verify the hash chain, every signed head, and every stored command's signature and authority"
  )
)

const replay = Command.make(
  "replay",
  { data: dataOption, node: nodeOption, json: jsonOption, feed: feedOption },
  ({ data, feed, json, node }) =>
    Effect.gen(function*() {
      const report = yield* replayReport(data, node, feed)
      yield* output(json, report, (r) =>
        [
          ...r.actors.map((actor) =>
            `${actor.category}: ${actor.entities} entities replayed, ${
              actor.mismatches.length === 0
                ? "all equal to live state"
                : `${actor.mismatches.length} differ: ${actor.mismatches.map((m) => m.entityId).join(", ")}`
            }`
          ),
          ...r.unreplayed.map(({ category, events }) =>
            `${category}: ${events} events that no actor of this node replays MISMATCH`
          ),
          ...r.books.map((book) =>
            `${book.book}: ${book.expected} rUv kept, ${book.actual} in the ledger${book.ok ? "" : " MISMATCH"}`
          ),
          `rUv supply: minted ${r.supply.minted} = available ${r.supply.available} + held ${r.supply.held} + in flight ${r.supply.inFlight} + burned ${r.supply.burned}: ${
            r.supply.conserved ? "conserved" : "NOT conserved"
          }`,
          `state digest ${r.stateDigest}`,
          `replayed up to position ${r.head.position}: ${r.ok ? "ok" : "MISMATCH"}`
        ].join("\n"))
      if (!report.ok) {
        const differ = report.actors.some((actor) => actor.mismatches.length > 0)
        const books = report.books.filter((book) => !book.ok).map((book) => book.book)
        const why = [
          ...(differ ? ["replaying the log does not give the live state"] : []),
          ...(report.unreplayed.length > 0
            ? [`no actor replays ${report.unreplayed.map(({ category }) => category).join(", ")}`]
            : []),
          ...(books.length > 0 ? [`books do not agree with the ledger: ${[...new Set(books)].join(", ")}`] : []),
          ...(report.supply.conserved ? [] : ["rUv is not conserved"])
        ]
        return yield* Effect.fail(new CliError({ message: why.join("; ") || "replay is not ok" }))
      }
    })
).pipe(Command.withDescription("rebuild every state from the log alone and compare it with the live state"))

/** An entity's events in order (position, hash, type, payload), then why it stands where it does. */
export const explainText = (view: ExplainView): string =>
  [
    ...view.events.map((event) =>
      `#${event.position} ${event.hash.slice(0, 16)} ${event.eventType} ${JSON.stringify(event.payload)}`
    ),
    "",
    view.why
  ].join("\n")

const explain = Command.make("explain", {
  kind: Args.choice(
    [
      ["auction", "auction"],
      ["proposal", "proposal"],
      ["account", "account"],
      ["optimizer-job", "optimizer-job"],
      ["training-job", "training-job"],
      ["round", "round"]
    ] as const,
    { name: "kind" }
  ),
  id: Args.text({ name: "id" }),
  data: dataOption,
  node: nodeOption,
  json: jsonOption
}, ({ data, id, json, kind, node }) =>
  withNode(
    data,
    node,
    Effect.gen(function*() {
      const client = yield* NodeClient
      // An account may be named by the key that owns it, as everywhere in the CLI.
      const entity = kind === "account" ? yield* parseAccount(id) : id
      const view = yield* client.call(client.rpc.AuditExplain({ kind, id: entity }))
      yield* output(json, view, explainText)
    })
  )).pipe(
    Command.withDescription(
      "one auction, proposal or account: its events in order (position, hash, type, payload) and why it stands where it does"
    )
  )

export const auditCommand = Command.make("audit").pipe(
  Command.withDescription("tamper evidence and replay"),
  Command.withSubcommands([verify, replay, explain])
)
