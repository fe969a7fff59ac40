/** models.yaml: every key it accepts is used; a key it does not use is refused with one line naming it. */
import { Effect, Either } from "effect"
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { loadConfig, setConfig } from "../../src/content/ModelsConfig.js"
import { ipfsGatewaySource } from "../../src/content/Sources.js"
import { tempDir } from "../support/TempDir.js"

const configWith = (text: string) => {
  const file = path.join(tempDir("models-config-"), "models.yaml")
  fs.writeFileSync(file, text)
  return file
}

describe("models.yaml", () => {
  it("refuses the seed's keys nothing uses (ipfs.parallel, preferences.*) and any other unknown key, naming it", async () => {
    for (
      const [text, key] of [
        ["version: 1\nipfs:\n  parallel: 4\n", "ipfs.parallel"],
        ["version: 1\npreferences:\n  preferQuantization: INT4\n", "preferences"],
        ["version: 1\ncache:\n  autoClean: true\n", "cache.autoClean"]
      ] as const
    ) {
      const file = configWith(text)
      const loaded = await Effect.runPromise(Effect.either(loadConfig(file)))
      expect(Either.isLeft(loaded) && loaded.left.message).toMatch(
        new RegExp(`^${file}: unknown key "${key.replace(".", "\\.")}" \\(keys: `)
      )
    }
    const file = configWith("version: 1\n")
    const set = await Effect.runPromise(Effect.either(setConfig("preferences.autoUpdate", "true", file)))
    expect(Either.isLeft(set) && set.left.message).toContain("unknown key \"preferences.autoUpdate\"")
    const accepted = await Effect.runPromise(
      loadConfig(configWith("version: 1\ncache:\n  autoCleanup: false\nipfs:\n  timeout: 250\n"))
    )
    expect(accepted.cache.autoCleanup).toBe(false)
    expect(accepted.ipfs.timeout).toBe(250)
  })

  it("ipfs.timeout cuts off a gateway that sends nothing, whatever the download asks of other sources", async () => {
    const server = http.createServer(() => {
      // Never answers.
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    const port = (server.address() as AddressInfo).port
    try {
      const gateway = ipfsGatewaySource(`http://127.0.0.1:${port}`, undefined, { idleTimeoutMs: 300 })
      const started = Date.now()
      const result = await Effect.runPromise(Effect.either(gateway.fetchBlock!("bafkqaaa", { idleTimeoutMs: 30_000 })))
      expect(Either.isLeft(result) && result.left.reason).toBe("stalled: no byte for 300 ms")
      expect(Date.now() - started).toBeLessThan(5_000)
    } finally {
      server.closeAllConnections()
      server.close()
    }
  })
})
