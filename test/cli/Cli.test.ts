import { beforeAll, describe, expect, it } from "vitest"
import { execFile } from "node:child_process"
import { promisify } from "node:util"
import { compileCli, runCompiledCli, startCompiledNode } from "../support/CompiledCli.js"
import { tempDir } from "../support/TempDir.js"

const exec = promisify(execFile)

// The compiled CLI: a dozen runs through tsx's loader would cost more than the work they check.
let root = ""
beforeAll(() => {
  root = compileCli()
})
const cli = (...args: ReadonlyArray<string>) => runCompiledCli(root, args)

describe("edge-net CLI", () => {
  it("works on a data dir and through a running node, with one-line errors and JSON output", async () => {
    const dataDir = tempDir()
    const node = await startCompiledNode(root, dataDir)
    try {
      const minted = await cli("ledger", "mint", "alice", "100", "--node", node.url, "--json")
      expect(minted.code).toBe(0)
      expect(JSON.parse(minted.stdout)).toMatchObject({ account: "alice", available: "100" })

      // Directly on the data dir, beside the running node.
      const moved = await cli("ledger", "transfer", "alice", "bob", "30", "--id", "t-1", "--data", dataDir)
      expect(moved.code).toBe(0)
      expect(moved.stdout).toContain("transferred 30 rUv alice -> bob (transfer t-1")

      const [again, poor, badAmount, badAccount, balance] = await Promise.all([
        cli("ledger", "transfer", "alice", "bob", "30", "--id", "t-1", "--node", node.url),
        cli("ledger", "transfer", "bob", "alice", "31", "--node", node.url),
        cli("ledger", "transfer", "bob", "alice", "1.5", "--data", dataDir),
        cli("ledger", "balance", "no spaces allowed", "--data", dataDir),
        cli("ledger", "balance", "bob", "--node", node.url, "--json")
      ])
      expect(again.stdout).toContain("already transferred")
      for (const failure of [poor, badAmount, badAccount]) {
        expect(failure.code).toBe(1)
        expect(failure.stderr.trim().split("\n")).toHaveLength(1)
      }
      expect(poor.stderr).toContain("edge-net: insufficient funds: 31 rUv requested, 30 available")
      expect(badAmount.stderr).toContain('invalid amount "1.5"')
      expect(badAccount.stderr).toContain('invalid account "no spaces allowed"')
      expect(JSON.parse(balance.stdout)).toMatchObject({ account: "bob", available: "30", held: "0" })

      const [tail, verify, replay, info] = await Promise.all([
        cli("events", "tail", "--data", dataDir, "--json"),
        cli("audit", "verify", "--data", dataDir, "--json"),
        cli("audit", "replay", "--node", node.url),
        cli("node", "info", "--node", node.url, "--json")
      ])
      const events = tail.stdout.trim().split("\n").map((line) => JSON.parse(line) as { eventType: string })
      expect(events.map((e) => e.eventType)).toEqual(["Minted", "Debited", "Credited"])
      expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true, eventsChecked: 3, headsChecked: 3 })
      expect(replay.stdout).toContain("Account: 2 entities replayed, all equal to live state")
      expect(replay.stdout).toContain("conserved")
      expect(JSON.parse(info.stdout)).toMatchObject({ dataDir, head: { position: 3 } })
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
