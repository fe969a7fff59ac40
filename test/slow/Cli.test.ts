import { execFile } from "node:child_process"
import * as path from "node:path"
import { promisify } from "node:util"
import { beforeAll, describe, expect, it } from "vitest"
import { compileCli, runCompiledCli, startCompiledNode } from "../support/CompiledCli.js"
import { tempDir } from "../support/TempDir.js"

const exec = promisify(execFile)

// The compiled CLI: a dozen runs through tsx's loader would cost more than the work they check.
let root = ""
beforeAll(() => {
  root = compileCli()
})
// A HOME of the tests' own: the CLI signs with the keys in its ~/.edge-net/keys.
const home = tempDir()
const cli = (...args: ReadonlyArray<string>) => runCompiledCli(root, args, { HOME: home })

describe("edge-net CLI", () => {
  it("works on a data dir and through a running node, with one-line errors and JSON output", async () => {
    const dataDir = tempDir()
    const node = await startCompiledNode(root, dataDir)
    try {
      // Each account is a key: its id is derived from the public key, and only that key spends from it.
      const [aliceKey, bobKey] = await Promise.all([
        cli("models", "keys", "generate", "alice", "--json"),
        cli("models", "keys", "generate", "bob", "--json")
      ])
      const alice = (JSON.parse(aliceKey.stdout) as { account: string }).account
      const bob = (JSON.parse(bobKey.stdout) as { account: string }).account
      expect(alice).toMatch(/^[0-9a-f]{32}$/)

      // Minting takes an operator key: through a node, the operator names it (here the node's own key).
      const [minted, anonymous] = await Promise.all([
        cli("ledger", "mint", "alice", "100", "--node", node.url, "--key", path.join(dataDir, "node.key"), "--json"),
        cli("ledger", "mint", "alice", "100", "--node", node.url, "--key", "bob")
      ])
      expect(minted.code).toBe(0)
      expect(JSON.parse(minted.stdout)).toMatchObject({ account: alice, available: "100" })
      expect(anonymous.stderr).toBe("edge-net: LedgerMint refused: needs 1 of the 1 operator key(s), signed by 0\n")

      // Directly on the data dir, beside the running node.
      const moved = await cli("ledger", "transfer", "alice", "bob", "30", "--id", "t-1", "--data", dataDir)
      expect(moved.code).toBe(0)
      expect(moved.stdout).toContain(`transferred 30 rUv ${alice} -> ${bob} (transfer t-1`)

      const [again, poor, badAmount, badAccount, balance, stolen] = await Promise.all([
        cli("ledger", "transfer", "alice", "bob", "30", "--id", "t-1", "--node", node.url),
        cli("ledger", "transfer", "bob", "alice", "31", "--node", node.url),
        cli("ledger", "transfer", "bob", "alice", "1.5", "--data", dataDir),
        cli("ledger", "balance", "no spaces allowed", "--data", dataDir),
        cli("ledger", "balance", "bob", "--node", node.url, "--json"),
        cli("ledger", "transfer", "alice", "bob", "5", "--key", "bob", "--node", node.url)
      ])
      expect(again.stdout).toContain("already transferred")
      for (const failure of [poor, badAmount, badAccount, stolen]) {
        expect(failure.code).toBe(1)
        expect(failure.stderr.trim().split("\n")).toHaveLength(1)
      }
      expect(poor.stderr).toContain("edge-net: insufficient funds: 31 rUv requested, 30 available")
      expect(badAmount.stderr).toContain("invalid amount \"1.5\"")
      expect(badAccount.stderr).toContain("invalid account \"no spaces allowed\"")
      expect(stolen.stderr).toBe(`edge-net: LedgerTransfer refused: from ${alice} is not the signer's account ${bob}\n`)
      expect(JSON.parse(balance.stdout)).toMatchObject({ account: bob, available: "30", held: "0" })

      const [tail, verify, replay, info] = await Promise.all([
        cli("events", "tail", "--data", dataDir, "--json"),
        cli("audit", "verify", "--data", dataDir, "--json"),
        cli("audit", "replay", "--node", node.url),
        cli("node", "info", "--node", node.url, "--json")
      ])
      const events = tail.stdout.trim().split("\n").map((line) => JSON.parse(line) as { eventType: string })
      // The network's charter (its id and operator keys) is the journal's first event.
      expect(events.map((e) => e.eventType)).toEqual(["NetworkFounded", "Minted", "Debited", "Credited"])
      // Three commits, each under a signed head: the charter, the mint, and the transfer's debit and
      // credit, which one transaction writes together (sendPair).
      expect(JSON.parse(verify.stdout)).toMatchObject({
        ok: true,
        eventsChecked: 4,
        headsChecked: 3,
        commandsChecked: 2,
        ownerEventsChecked: 1
      })
      expect(replay.stdout).toContain("Account: 2 entities replayed, all equal to live state")
      expect(replay.stdout).toContain("conserved")
      expect(JSON.parse(info.stdout)).toMatchObject({
        dataDir,
        head: { position: 4 },
        network: "edge-net-dev",
        operatorThreshold: 1
      })
    } finally {
      await node.kill("SIGTERM")
    }
    const unreachable = await cli("ledger", "balance", "bob", "--node", node.url)
    expect(unreachable.code).toBe(1)
    expect(unreachable.stderr).toContain(`cannot reach the edge-net node at ${node.url}`)
  }, 120_000)

  it("refuses a data dir that holds no node, and names it", async () => {
    const missing = await cli("audit", "verify", "--data", "/nonexistent/edge-net")
    expect(missing.code).toBe(1)
    expect(missing.stderr.trim()).toBe(
      "edge-net: no edge-net data in /nonexistent/edge-net (start a node there first: edge-net node start --data /nonexistent/edge-net)"
    )
  }, 60_000)

  it("edge-net-models is the models command group", async () => {
    const { stdout } = await exec(process.execPath, ["--import", "tsx", "src/cli/edge-net-models.ts", "--help"])
    expect(stdout).toContain("edge-net-models")
  }, 60_000)
})
