/**
 * The market benchmark still runs end to end. Its RPC half signs every command as a real client must;
 * when signed commands arrived, the bench went on sending unsigned ones and stopped at its first mint,
 * and nothing noticed until the next time someone ran it. Here with a small journal for the audit half
 * (`MARKET_BENCH_EVENTS`); the RPC half runs at full size (its auctions' reveal window is 25 s).
 */
import { execFile } from "node:child_process"
import * as path from "node:path"
import { promisify } from "node:util"
import { describe, expect, it } from "vitest"

const ROOT = path.resolve(import.meta.dirname, "../..")

describe("npm run bench -- market", () => {
  it("runs through the node's signed RPC and the audit, printing every figure", async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--import", "tsx", "bench/run.ts", "market"],
      { cwd: ROOT, env: { ...process.env, MARKET_BENCH_EVENTS: "5000" }, maxBuffer: 16 * 1024 * 1024 }
    )
    for (
      const figure of [
        "swaps, 32 RPC clients",
        "bids (commit + reveal), 32 RPC clients",
        "audit replay",
        "audit verify",
        "replay + verify in one read"
      ]
    ) {
      expect(stdout).toContain(figure)
    }
  }, 300_000)
})
