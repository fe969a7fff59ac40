/**
 * What the CLI asks of a node, two ways: directly on a data dir (opening its SQLite journal, which
 * works beside a running node) or over RPC/HTTP to a running node (`--node URL`).
 */
import { FetchHttpClient, HttpApiClient } from "@effect/platform"
import { RpcClient, RpcSerialization, RpcTest } from "@effect/rpc"
import type { RpcGroup } from "@effect/rpc"
import { RpcClientError } from "@effect/rpc/RpcClientError"
import { Chunk, Context, Effect, Layer, Option, Stream } from "effect"
import type { Balance, TransferReceipt } from "../actors/economy/Ledger.js"
import type { LedgerFailure } from "../actors/economy/LedgerRpc.js"
import type { CommandRefused } from "../domain/CommandAuthority.js"
import { AccountId, OperationId } from "../domain/Money.js"
import type { SequencerUnreachable } from "../domain/Sequencing.js"
import type { Envelope } from "../events/Envelope.js"
import { Journal } from "../events/Journal.js"
import { NodeApi } from "../http/Api.js"
import { nodeServices } from "../layers/Node.js"
import type { ReplayReportView } from "../layers/NodeAudit.js"
import { NodeAudit } from "../layers/NodeAudit.js"
import type { NodeSettings } from "../layers/NodeConfig.js"
import type { NodeInfoView } from "../layers/NodeStatus.js"
import { NodeStatus } from "../layers/NodeStatus.js"
import { signingClientLayer } from "../rpc/CommandSigning.js"
import { NodeApiRpcs } from "../rpc/NodeApiRpcs.js"
import type { ChainReportView } from "../rpc/NodeRpc.js"
import { NodeApiRpcHandlers } from "../rpc/NodeRpcHandlers.js"
import { sequencedLayer } from "../rpc/Sequencing.js"
import { signedCommandsLayer } from "../rpc/SignedCommandsLive.js"
import { CliError } from "./CliError.js"

type LedgerFailureType = typeof LedgerFailure.Type | CommandRefused | SequencerUnreachable

/** The node's whole RPC contract as a client: over HTTP in remote mode, in process in direct mode. */
export type NodeRpcClient = RpcClient.RpcClient<RpcGroup.Rpcs<typeof NodeApiRpcs>, RpcClientError>

export interface EventsPage {
  readonly events: ReadonlyArray<Envelope>
  readonly next: number
  readonly head: number
}

export interface NodeClientService {
  readonly info: Effect.Effect<NodeInfoView, CliError>
  readonly verify: Effect.Effect<ChainReportView, CliError>
  readonly replay: Effect.Effect<ReplayReportView, CliError>
  readonly events: (from: number, limit: number) => Effect.Effect<EventsPage, CliError>
  readonly follow: (from: number) => Stream.Stream<Envelope, CliError>
  readonly balance: (account: string) => Effect.Effect<Balance, CliError | SequencerUnreachable>
  readonly mint: (
    account: string,
    amount: bigint,
    operationId?: string
  ) => Effect.Effect<Balance, CliError | LedgerFailureType>
  readonly transfer: (
    from: string,
    to: string,
    amount: bigint,
    transferId?: string
  ) => Effect.Effect<TransferReceipt, CliError | LedgerFailureType>
  /** Every RPC of the node (market, auctions, staking, governance, audit explain); wrap calls in `call`. */
  readonly rpc: NodeRpcClient
  /** Turns "cannot reach the node" into a CliError; domain failures pass through as they are. */
  readonly call: <A, E>(
    effect: Effect.Effect<A, E | RpcClientError>
  ) => Effect.Effect<A, Exclude<E, RpcClientError> | CliError>
}

// In process there is no transport to fail.
const inProcess = <A, E>(effect: Effect.Effect<A, E | RpcClientError>) =>
  effect as Effect.Effect<A, Exclude<E, RpcClientError>>

/** Mint and transfer as signed commands through the node's RPC (the fiber's signer signs them). */
const ledgerCommands = (rpc: NodeRpcClient) => ({
  mint: (account: string, amount: bigint, operationId?: string) =>
    rpc.LedgerMint({
      account: AccountId.make(account),
      amount,
      ...(operationId === undefined ? {} : { operationId: OperationId.make(operationId) })
    }),
  transfer: (from: string, to: string, amount: bigint, transferId?: string) =>
    rpc.LedgerTransfer({
      from: AccountId.make(from),
      to: AccountId.make(to),
      amount,
      ...(transferId === undefined ? {} : { transferId: OperationId.make(transferId) })
    })
})

export class NodeClient extends Context.Tag("edge-net/cli/NodeClient")<NodeClient, NodeClientService>() {
  /** Opens the data dir's journal in this process. */
  static readonly direct = (settings: NodeSettings) =>
    Layer.scoped(
      NodeClient,
      Effect.gen(function*() {
        const status = yield* NodeStatus
        const audit = yield* NodeAudit
        const journal = yield* Journal
        // In process, but through the same handlers and signature checks as a node's /rpc.
        const rpc: NodeRpcClient = yield* RpcTest.makeClient(NodeApiRpcs)
        const events = (from: number, limit: number) =>
          Effect.gen(function*() {
            const page = yield* journal.readAll(from, limit)
            const head = yield* journal.head
            return {
              events: page,
              next: page.length === 0 ? from : page[page.length - 1]!.position + 1,
              head: head.position
            }
          })
        return {
          info: status.info(),
          verify: inProcess(rpc.AuditVerify()),
          replay: audit.replay(),
          events,
          follow: (from) => journal.subscribe(from),
          balance: (account) => inProcess(rpc.LedgerBalance({ account: AccountId.make(account) })),
          mint: (account, amount, operationId) => inProcess(ledgerCommands(rpc).mint(account, amount, operationId)),
          transfer: (from, to, amount, transferId) =>
            inProcess(ledgerCommands(rpc).transfer(from, to, amount, transferId)),
          rpc,
          call: inProcess
        } satisfies NodeClientService
      })
    ).pipe(
      Layer.provide([
        NodeApiRpcHandlers,
        signedCommandsLayer({ verifierThreads: 0 }),
        sequencedLayer,
        signingClientLayer
      ]),
      Layer.provide(nodeServices(settings))
    )

  /** Talks to a running node: RPC at `<url>/rpc`, the audit feed at `<url>/v1/events`. */
  static readonly remote = (url: string) =>
    Layer.scoped(
      NodeClient,
      Effect.gen(function*() {
        const base = url.replace(/\/+$/, "")
        const rpc = yield* RpcClient.make(NodeApiRpcs).pipe(
          Effect.provide(
            RpcClient.layerProtocolHttp({ url: `${base}/rpc` }).pipe(Layer.provide(RpcSerialization.layerNdjson))
          ),
          Effect.provide(signingClientLayer)
        )
        const http = yield* HttpApiClient.make(NodeApi, { baseUrl: base })
        const unreachable = (cause: { readonly message: string }) =>
          new CliError({ message: `cannot reach the edge-net node at ${base}: ${cause.message}` })
        const call = <A, E>(effect: Effect.Effect<A, E | RpcClientError>) =>
          Effect.catchIf(effect, (error): error is RpcClientError =>
            error instanceof RpcClientError, (error) =>
            Effect.fail(unreachable(error)))
        const events = (from: number, limit: number) =>
          http.events.list({ urlParams: { from, limit } }).pipe(Effect.mapError(unreachable))
        const follow = (from: number): Stream.Stream<Envelope, CliError> =>
          Stream.paginateChunkEffect(from, (cursor) =>
            events(cursor, 500).pipe(
              Effect.flatMap((page) =>
                page.events.length === 0
                  ? Effect.as(Effect.sleep("250 millis"), [Chunk.empty<Envelope>(), Option.some(cursor)] as const)
                  : Effect.succeed([Chunk.fromIterable(page.events), Option.some(page.next)] as const)
              )
            ))
        return {
          info: call(rpc.NodeInfo()),
          verify: call(rpc.AuditVerify()),
          replay: call(rpc.AuditReplay()),
          events,
          follow,
          balance: (account) =>
            call(rpc.LedgerBalance({ account: AccountId.make(account) })),
          mint: (account, amount, operationId) => call(ledgerCommands(rpc).mint(account, amount, operationId)),
          transfer: (from, to, amount, transferId) => call(ledgerCommands(rpc).transfer(from, to, amount, transferId)),
          rpc,
          call: <A, E>(effect: Effect.Effect<A, E | RpcClientError>) =>
            call(effect as Effect.Effect<A, Exclude<E, RpcClientError> | RpcClientError>)
        } satisfies NodeClientService
      })
    ).pipe(Layer.provide(FetchHttpClient.layer))
}
