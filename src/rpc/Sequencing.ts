/**
 * The `Sequenced` middleware's two sides. On a node whose charter names another node as the
 * economy's sequencer, an economy RPC is not run here: its payload, as its contract encodes it (the
 * signature included), goes to the sequencer over the peer's command protocol and the sequencer's
 * exit comes back, decoded by the same contract, so the caller sees the sequencer's answer or its
 * refusal as if the sequencer had been called. On the sequencer, forwarded commands enter through the
 * node's own RPC server in process: the same gate checks their signatures, the same handlers run them.
 */
import type { RpcMiddleware } from "@effect/rpc"
import { Rpc, RpcTest } from "@effect/rpc"
import { Context, Effect, Layer, ParseResult, Schema } from "effect"
import { NetworkCharter } from "../actors/network/CharterService.js"
import { NodeKey } from "../content/NodeKey.js"
import { AnsweredByPeers, Sequenced, SequencerUnreachable } from "../domain/Sequencing.js"
import type { ForwardedAnswer, ForwardedCommand } from "../net/CommandWire.js"
import { Peers } from "../net/Peers.js"
import { NodeApiRpcs } from "./NodeApiRpcs.js"

/** Runs every economy RPC on this node: for runtimes with no network (tests, embedded use). */
export const sequencedHere = Layer.succeed(Sequenced, Sequenced.of(({ next }) => next))

/** The sequencer's key from the charter (read once: a charter never changes), or none. */
const sequencerOfCharter = Effect.map(
  NetworkCharter,
  (charter) => Effect.map(charter.termsNow, (terms) => terms?.sequencer)
)

const firstLine = (text: string) => text.split("\n", 1)[0] ?? text

/** The node's own contract for an RPC tag: its payload Schema, and its exit's by `Rpc.exitSchema`. */
const contractOf = (tag: string) => {
  const rpc: unknown = NodeApiRpcs.requests.get(tag)
  return Rpc.isRpc(rpc) ? rpc : undefined
}

/** Whether an RPC of the contract carries the `Sequenced` middleware: an economy RPC. */
const isSequenced = (rpc: Rpc.AnyWithProps) =>
  [...rpc.middlewares].some((middleware) => middleware.key === Sequenced.key)

/** Whether peers may send an RPC of the contract to any node, which runs it itself (learning between peers). */
const isAnsweredByPeers = (rpc: Rpc.AnyWithProps) => Context.get(rpc.annotations, AnsweredByPeers)

/** Our contract's Schemas need no services; an RPC looked up by tag has erased types that do not say so. */
const withoutServices = <A, E>(effect: Effect.Effect<A, E, unknown>) => effect as Effect.Effect<A, E>

/**
 * Sends an RPC of the node's contract, its payload as given (a signed one with its `auth`), to the node
 * whose key is `publicKey` over the command protocol. Succeeds with that node's exit, decoded by the
 * same contract (so its own errors arrive as they are); fails with why it could not be sent or run.
 */
export const sendToPeer = (
  peers: Context.Tag.Service<typeof Peers>,
  publicKey: string,
  tag: string,
  payload: unknown
): Effect.Effect<Effect.Effect<unknown, unknown>, string> =>
  Effect.gen(function*() {
    const contract = contractOf(tag)
    if (contract === undefined) return yield* Effect.fail(`${tag} is not in this node's contract`)
    const encoded = yield* withoutServices(Schema.encodeUnknown(contract.payloadSchema)(payload)).pipe(
      Effect.mapError((error) => `cannot encode ${tag}: ${firstLine(error.message)}`)
    )
    const answer = yield* peers.forward(publicKey, { rpc: tag, payload: encoded }).pipe(
      Effect.mapError((error) => error.message)
    )
    if ("refused" in answer) return yield* Effect.fail(answer.refused)
    const exit = yield* withoutServices(Schema.decodeUnknown(Rpc.exitSchema(contract))(answer.exit)).pipe(
      Effect.mapError((error) => `its answer does not decode: ${firstLine(error.message)}`)
    )
    return exit
  })

/**
 * Runs economy RPCs here when this node is the sequencer (or none is named), and forwards them to the
 * sequencer otherwise; with no running peer (the CLI's direct mode) forwarding fails in one line.
 */
export const sequencedLayer = Layer.effect(
  Sequenced,
  Effect.gen(function*() {
    const key = yield* NodeKey
    const peers = yield* Peers
    const sequencerNow = yield* sequencerOfCharter
    const forward = (tag: string, payload: unknown, sequencer: string) =>
      Effect.flatten(
        Effect.mapError(
          sendToPeer(peers, sequencer, tag, payload),
          (detail) => new SequencerUnreachable({ sequencer, detail })
        )
      )
    return Sequenced.of(({ next, payload, rpc }) =>
      Effect.flatMap(sequencerNow, (sequencer) =>
        sequencer === undefined || sequencer === key.publicKey
          ? next
          // The sequencer's exit, decoded by the same contract, is what the handler here would have
          // ended with: its success value, or its own error (which `next` would carry as well).
          : forward(rpc._tag, payload, sequencer) as Effect.Effect<RpcMiddleware.SuccessValue, SequencerUnreachable>)
    )
  })
)

/**
 * The sequencer's side: the commands other nodes forward are decoded by their contract and run
 * through this node's RPC handlers in process (gate included); anything else is refused in one line.
 * A node that is not the sequencer refuses them all, so two nodes with different charters cannot
 * bounce a command between them.
 */
export const forwardedCommandsIntake = Layer.scopedDiscard(
  Effect.gen(function*() {
    const key = yield* NodeKey
    const peers = yield* Peers
    const sequencerNow = yield* sequencerOfCharter
    const client = yield* RpcTest.makeClient(NodeApiRpcs)
    /** The client's method for an RPC tag (the group's tags are its method names). */
    const call = (tag: string, payload: unknown): Effect.Effect<unknown, unknown> => {
      const method: unknown = Reflect.get(client, tag)
      const result: unknown = typeof method === "function" ? method(payload) : undefined
      return Effect.isEffect(result)
        ? result as Effect.Effect<unknown, unknown>
        : Effect.dieMessage(`the RPC client has no ${tag}`)
    }
    const answer = ({ payload, rpc: tag }: ForwardedCommand): Effect.Effect<ForwardedAnswer> =>
      Effect.gen(function*(): Effect.fn.Return<ForwardedAnswer> {
        const rpc = contractOf(tag)
        if (rpc === undefined || !(isSequenced(rpc) || isAnsweredByPeers(rpc))) {
          return { refused: `${tag} is not an economy command nor one that peers send each other` }
        }
        if (isSequenced(rpc)) {
          const sequencer = yield* sequencerNow
          if (sequencer !== key.publicKey) {
            return { refused: `this node does not sequence the economy (its charter names ${sequencer ?? "none"})` }
          }
        }
        const decoded = yield* withoutServices(Schema.decodeUnknown(rpc.payloadSchema)(payload)).pipe(Effect.either)
        if (decoded._tag === "Left") {
          return { refused: `${tag}: ${firstLine(ParseResult.TreeFormatter.formatErrorSync(decoded.left))}` }
        }
        const exit = yield* Effect.exit(call(tag, decoded.right))
        const encoded = yield* withoutServices(Schema.encode(Rpc.exitSchema(rpc))(exit)).pipe(Effect.either)
        return encoded._tag === "Right"
          ? { exit: encoded.right }
          : { refused: `${tag} ended with what its contract cannot carry: ${firstLine(encoded.left.message)}` }
      })
    yield* peers.acceptForwarded(answer)
  })
)
