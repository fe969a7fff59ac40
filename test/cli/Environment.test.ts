/** The `EDGE_NET_*` variables, checked at start: a bad one is one line naming it, before any work. */
import * as fs from "node:fs"
import * as path from "node:path"
import { beforeAll, describe, expect, it } from "vitest"
import { compileCli, runCompiledCli } from "../support/CompiledCli.js"
import { tempDir } from "../support/TempDir.js"

let root = ""
beforeAll(() => {
  root = compileCli()
})

describe("edge-net environment", () => {
  it("refuses a bad EDGE_NET_SYNC, EDGE_NET_CONTENT_MAX, EDGE_NET_PORT, EDGE_NET_GENESIS, EDGE_NET_OPERATORS, EDGE_NET_SEQUENCER, EDGE_NET_INFERENCE_QUEUE or --port with one line, touching nothing", async () => {
    const dataDir = path.join(tempDir("environment-"), "node")
    const start = ["node", "start", "--data", dataDir]
    const [sync, content, port, genesis, operators, sequencer, queue, flag, models] = await Promise.all([
      runCompiledCli(root, start, { EDGE_NET_SYNC: "fsync-always" }),
      runCompiledCli(root, start, { EDGE_NET_CONTENT_MAX: "lots" }),
      runCompiledCli(root, start, { EDGE_NET_PORT: "99999" }),
      runCompiledCli(root, start, { EDGE_NET_GENESIS: "noSuchParameter=1" }),
      runCompiledCli(root, start, { EDGE_NET_OPERATORS: "not-a-key" }),
      runCompiledCli(root, start, { EDGE_NET_SEQUENCER: "the-first-node" }),
      runCompiledCli(root, start, { EDGE_NET_INFERENCE_QUEUE: "-1" }),
      runCompiledCli(root, [...start, "--port", "70000"]),
      // Every command reads the environment first, the models CLI included.
      runCompiledCli(root, ["models", "cache", "info"], { EDGE_NET_SYNC: "sometimes" })
    ])
    for (const failure of [sync, content, port, genesis, operators, sequencer, queue, flag, models]) {
      expect(failure.code).toBe(1)
      expect(failure.stderr.trim().split("\n")).toHaveLength(1)
    }
    expect(sync.stderr).toBe(
      "edge-net: EDGE_NET_SYNC: expected one of (off, normal, full) but received \"fsync-always\"\n"
    )
    expect(content.stderr).toBe(
      `edge-net: EDGE_NET_CONTENT_MAX: expected a size such as 10GiB, 512MB or a number of bytes, got "lots"\n`
    )
    expect(port.stderr).toBe("edge-net: EDGE_NET_PORT: expected a network port value but received \"99999\"\n")
    expect(genesis.stderr).toBe(`edge-net: EDGE_NET_GENESIS: unknown parameter "noSuchParameter"\n`)
    expect(operators.stderr).toBe(
      `edge-net: EDGE_NET_OPERATORS: "not-a-key" is not an Ed25519 public key (64 lowercase hex digits)\n`
    )
    expect(sequencer.stderr).toBe(
      `edge-net: EDGE_NET_SEQUENCER: "the-first-node" is not self, an Ed25519 public key (64 lowercase hex digits) or an Ed25519 peer id\n`
    )
    expect(queue.stderr).toBe(
      `edge-net: EDGE_NET_INFERENCE_QUEUE: expected a whole number of at least 0, got "-1"\n`
    )
    expect(flag.stderr).toBe("edge-net: invalid --port 70000: expected a port number from 1 to 65535\n")
    expect(models.stderr).toContain("edge-net: EDGE_NET_SYNC: expected one of (off, normal, full)")
    expect(fs.existsSync(dataDir)).toBe(false)
  })

  it("takes models.yaml from EDGE_NET_MODELS_CONFIG when --config is not given", async () => {
    const home = tempDir("environment-home-")
    const config = path.join(home, "elsewhere.yaml")
    fs.writeFileSync(config, "version: 1\ncache:\n  maxSize: 3MB\n")
    const shown = await runCompiledCli(root, ["models", "config", "show", "--json"], {
      HOME: home,
      EDGE_NET_MODELS_CONFIG: config
    })
    expect(shown.code).toBe(0)
    expect(JSON.parse(shown.stdout)).toMatchObject({ cache: { maxSize: "3MB" } })
  })
})
