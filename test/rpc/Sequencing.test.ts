/**
 * Economy commands on a node that does not sequence the economy: forwarded, signature and all, to the
 * sequencer named in the charter, run there through its gate and handlers, and answered back in the
 * contract's own terms. Two nodes in process on SQLite data dirs, their peers joined by a link that
 * carries the forwarded command and the answer as the wire does (JSON bytes); the libp2p transport
 * itself is exercised by test/slow/Network.test.ts.
 */
import { RpcTest } from "@effect/rpc"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer, ManagedRuntime } from "effect"
import { NodeKey } from "../../src/content/NodeKey.js"
import { Journal } from "../../src/events/Journal.js"
import { nodeServices } from "../../src/layers/Node.js"
import type { NodeSettings } from "../../src/layers/NodeConfig.js"
import type { ForwardedAnswer, ForwardedCommand } from "../../src/net/CommandWire.js"
import { ForwardedAnswer as AnswerSchema, ForwardedCommand as CommandSchema } from "../../src/net/CommandWire.js"
import { encodeJson, wireDecoder } from "../../src/net/FeedWire.js"
import { Peers, PeersError } from "../../src/net/Peers.js"
import { signingClientLayer } from "../../src/rpc/CommandSigning.js"
import { NodeApiRpcs } from "../../src/rpc/NodeApiRpcs.js"
import { NodeApiRpcHandlers } from "../../src/rpc/NodeRpcHandlers.js"
import { forwardedCommandsIntake, sequencedLayer } from "../../src/rpc/Sequencing.js"
import { signedCommandsLayer } from "../../src/rpc/SignedCommandsLive.js"
import { as, testKey } from "../support/Signing.js"
import { tempDir } from "../support/TempDir.js"

type Answer = (command: ForwardedCommand) => Effect.Effect<ForwardedAnswer>
const nodeRpc = RpcTest.makeClient(NodeApiRpcs)
type NodeRpc = Effect.Effect.Success<typeof nodeRpc>

/** A peer whose forwarded commands reach `remote`'s intake through bytes, as over the wire. */
const linkedPeers = (intakes: Map<string, Answer>, self: { answer?: Answer }) =>
  Layer.succeed(Peers, {
    view: Effect.die("not used"),
    forkProofs: Effect.succeed([]),
    add: () => Effect.die("not used"),
    remove: () => Effect.die("not used"),
    forward: (publicKey, command) => {
      const answer = intakes.get(publicKey)
      if (answer === undefined) return Effect.fail(new PeersError({ message: `no route to ${publicKey}` }))
      const sent = wireDecoder(CommandSchema)(encodeJson(command))
      return Either.isLeft(sent)
        ? Effect.die(sent.left)
        : Effect.map(answer(sent.right), (reply) => Either.getOrThrow(wireDecoder(AnswerSchema)(encodeJson(reply))))
    },
    holders: () => Effect.succeed([]),
    adapters: {
      view: Effect.die("not used"),
      pull: () => Effect.die("not used"),
      report: () => Effect.die("not used")
    },
    acceptForwarded: (answer) => Effect.sync(() => (self.answer = answer))
  })

const nodeRuntime = (settings: Partial<NodeSettings>, intakes: Map<string, Answer>) => {
  const self: { answer?: Answer } = {}
  const rpc = Layer.mergeAll(NodeApiRpcHandlers, signedCommandsLayer({ verifierThreads: 0 }), sequencedLayer)
  const layer = Layer.mergeAll(forwardedCommandsIntake.pipe(Layer.provide(rpc)), rpc, signingClientLayer).pipe(
    Layer.provide(linkedPeers(intakes, self)),
    Layer.provideMerge(
      nodeServices({ dataDir: tempDir(), host: "127.0.0.1", port: 0, synchronous: "normal", ...settings })
    )
  )
  return { runtime: ManagedRuntime.make(layer), self }
}
type NodeRuntime = ReturnType<typeof nodeRuntime>

describe("economy commands on a node that is not the sequencer", () => {
  const operator = testKey()
  const alice = testKey()
  const bob = testKey()
  const intakes = new Map<string, Answer>()
  const sequencer = nodeRuntime({ sequencer: "self", operators: [operator.publicKey] }, intakes)
  let other: NodeRuntime | undefined
  afterAll(() => Promise.all([sequencer.runtime.dispose(), other?.runtime.dispose()]))

  const clientOf = (runtime: NodeRuntime["runtime"]) => <A, E>(use: (client: NodeRpc) => Effect.Effect<A, E>) =>
    runtime.runPromise(Effect.scoped(Effect.flatMap(nodeRpc, use)))

  it("are sequenced there, answered here, and leave this node's journal as it was", async () => {
    const sequencerKey = await sequencer.runtime.runPromise(Effect.map(NodeKey, (key) => key.publicKey))
    intakes.set(sequencerKey, sequencer.self.answer!)
    other = nodeRuntime({ sequencer: sequencerKey, operators: [operator.publicKey] }, intakes)
    const onSequencer = clientOf(sequencer.runtime)
    const onOther = clientOf(other.runtime)
    const otherHead = await other.runtime.runPromise(Effect.flatMap(Journal, (journal) => journal.head))

    await onOther((rpc) => as(operator)(rpc.LedgerMint({ account: alice.account, amount: 100n })))
    const receipt = await onOther((rpc) =>
      as(alice)(rpc.LedgerTransfer({ from: alice.account, to: bob.account, amount: 30n }))
    )
    expect(receipt.from.available).toBe(70n)
    // Reads forward too: the economy this node answers about is the sequencer's.
    expect(await onOther((rpc) => rpc.LedgerBalance({ account: bob.account }))).toMatchObject({ available: 30n })
    expect(await onSequencer((rpc) => rpc.LedgerBalance({ account: bob.account }))).toMatchObject({ available: 30n })
    expect(await other.runtime.runPromise(Effect.flatMap(Journal, (journal) => journal.head))).toEqual(otherHead)

    // The sequencer's refusal and its domain errors come back as themselves.
    const notOwner = await onOther((rpc) =>
      Effect.flip(as(bob)(rpc.LedgerTransfer({ from: alice.account, to: bob.account, amount: 1n })))
    )
    expect(notOwner).toMatchObject({ _tag: "CommandRefused", reason: "not-owner" })
    const tooMuch = await onOther((rpc) =>
      Effect.flip(as(alice)(rpc.LedgerTransfer({ from: alice.account, to: bob.account, amount: 1_000n })))
    )
    expect(tooMuch).toMatchObject({ _tag: "InsufficientFunds" })
  })

  it("are refused by a node that does not sequence them, and what is not an economy command is refused", async () => {
    const answer = sequencer.self.answer!
    const peersAnswer = await Effect.runPromise(answer({ rpc: "PeersRemove", payload: { peerId: "x" } }))
    expect(peersAnswer).toEqual({
      refused: "PeersRemove is not an economy command nor one that peers send each other"
    })
    const malformed = await Effect.runPromise(answer({ rpc: "LedgerTransfer", payload: { from: 1 } }))
    expect("refused" in malformed && malformed.refused).toMatch(/^LedgerTransfer: /)
    const notSequencer = await Effect.runPromise(
      other!.self.answer!({ rpc: "LedgerBalance", payload: { account: alice.account } })
    )
    expect(notSequencer).toMatchObject({ refused: expect.stringMatching(/does not sequence the economy/) })
  })

  it("fail in one line when the sequencer cannot be reached", async () => {
    const unreachable = nodeRuntime({ sequencer: testKey().publicKey, operators: [operator.publicKey] }, intakes)
    try {
      const failure = await clientOf(unreachable.runtime)((rpc) =>
        Effect.flip(rpc.LedgerBalance({ account: alice.account }))
      )
      expect(failure).toMatchObject({ _tag: "SequencerUnreachable" })
      expect((failure as Error).message).toMatch(/^cannot reach the economy's sequencer [0-9a-f]{64}: no route to/)
    } finally {
      await unreachable.runtime.dispose()
    }
  })
})
