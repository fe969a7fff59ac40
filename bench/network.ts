/**
 * Network benchmarks: signed commands from 32 concurrent clients through a node's network path (RPC
 * over one WebSocket per client, MessagePack) into its journal, beside the same commands run by the
 * actor runner in process; and the simulation of the gossip and follow logic at 100 to 10,000 peers.
 */
import { RpcClient } from "@effect/rpc"
import { Effect, Layer, ManagedRuntime } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Ledger } from "../src/actors/economy/Ledger.js"
import { accountIdOf, ed25519 } from "../src/domain/Ed25519.js"
import { AccountId, OperationId } from "../src/domain/Money.js"
import type { SigningKey } from "../src/domain/SignedCommand.js"
import { nodeServices } from "../src/layers/Node.js"
import { authFor, signingAs, signingClientLayer } from "../src/rpc/CommandSigning.js"
import { NodeApiRpcs } from "../src/rpc/NodeApiRpcs.js"
import { socketProtocol } from "../src/rpc/NodeConnection.js"
import { startNode } from "../test/support/NodeProcess.js"
import { operatorKeyOf } from "../test/support/Signing.js"
import { report, time } from "./Report.js"

const CLIENTS = 32
const PER_CLIENT = Number(process.env["NETWORK_BENCH_COMMANDS"] ?? 500)
const NETWORK = "edge-net-dev"

const scratchDirs: Array<string> = []
const scratch = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "edge-net-bench-network-"))
  scratchDirs.push(dir)
  return dir
}
const ids = (count: number) => Array.from({ length: count }, (_, i) => i)
const keyOf = (): SigningKey & { account: string } => {
  const seed = crypto.randomBytes(32)
  const publicKey = ed25519.publicKeyOf(seed)
  return { seed, publicKey, account: accountIdOf(publicKey) }
}

export const run = async () => {
  try {
    await commandFigures()
  } finally {
    for (const dir of scratchDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
  }
}

const transferRpc = NodeApiRpcs.requests.get("LedgerTransfer")!

/** Each client's transfers, signed before the clock starts: the node's work is to verify, not to sign. */
const signedTransfers = (keys: ReadonlyArray<SigningKey & { account: string }>) => {
  const now = Date.now()
  return keys.map((key, i) =>
    ids(PER_CLIENT).map((k) => {
      const payload = {
        from: AccountId.make(key.account),
        to: AccountId.make(keys[(i + 1) % keys.length]!.account),
        amount: 1n,
        transferId: OperationId.make(`t-${i}-${k}`)
      }
      return { ...payload, auth: authFor(transferRpc, payload, { key, network: NETWORK, expiresInMs: 600_000 }, now) }
    })
  )
}

// 1. Signed transfers from 32 WebSocket clients into a node process, against the ledger in process.
const commandFigures = async () => {
  const keys = ids(CLIENTS).map(keyOf)
  const count = CLIENTS * PER_CLIENT

  // The floor: the same transfers by the ledger's actors in this process, 32 callers at once.
  const inProcess = ManagedRuntime.make(
    nodeServices({ dataDir: scratch(), host: "127.0.0.1", port: 0, synchronous: "normal" })
  )
  const ledger = await inProcess.runPromise(Ledger)
  await inProcess.runPromise(Effect.forEach(keys, (key) => ledger.mint(key.account, 1_000_000n), { discard: true }))
  const runnerSeconds = await time(() =>
    inProcess.runPromise(
      Effect.forEach(keys, (key, i) =>
        Effect.forEach(ids(PER_CLIENT), (k) =>
          ledger.transfer(key.account, keys[(i + 1) % CLIENTS]!.account, 1n, `t-${i}-${k}`), { discard: true }), {
        concurrency: "unbounded",
        discard: true
      })
    )
  )
  await inProcess.dispose()

  const dataDir = scratch()
  const node = await startNode(dataDir)
  try {
    const operator = operatorKeyOf(dataDir)
    const commands = signedTransfers(keys)
    const seconds = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const clients = yield* Effect.forEach(ids(CLIENTS), () =>
        Effect.gen(function*() {
          // Each client its own connection, built in this scope (a layer built inside would close it at once).
          const context = yield* Layer.build(Layer.merge(socketProtocol(node.url), signingClientLayer))
          return yield* Effect.provide(RpcClient.make(NodeApiRpcs), context)
        }))
      yield* signingAs({ key: operator, network: NETWORK })(
        Effect.forEach(
          keys,
          (key) => clients[0]!.LedgerMint({ account: AccountId.make(key.account), amount: 1_000_000n }),
          {
            discard: true
          }
        )
      )
      return yield* Effect.promise(() =>
        time(() =>
          Effect.runPromise(
            Effect.forEach(
              clients,
              (client, i) =>
                Effect.forEach(commands[i]!, (payload) => client.LedgerTransfer(payload), { discard: true }),
              {
                concurrency: "unbounded",
                discard: true
              }
            )
          )
        )
      )
    })))
    report(
      `signed transfers, ${CLIENTS} WebSocket clients -> journal`,
      "cmds/s",
      count / seconds,
      count / runnerSeconds,
      "in-process ledger (actor runner)",
      ">= 10,000/s and >= 0.4x"
    )
  } finally {
    await node.kill("SIGTERM")
  }
}
