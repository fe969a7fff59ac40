/**
 * Runs `edge-net node start` as a real child process on a free loopback port, from the sources
 * (through tsx), so tests exercise exactly what `npm start` runs.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as net from "node:net"

export interface RunningNode {
  readonly url: string
  readonly dataDir: string
  readonly process: ChildProcess
  readonly output: () => string
  readonly exited: Promise<number | null>
  readonly kill: (signal: NodeJS.Signals) => Promise<number | null>
}

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

/** Test nodes let the system pick their peer's ports: the HTTP port's neighbours may be taken. */
export const SYSTEM_PICKED_P2P = { EDGE_NET_P2P_LISTEN: "/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/tcp/0/ws" }

export const cliArgs = (...args: ReadonlyArray<string>) => ["--import", "tsx", "src/cli/edge-net.ts", ...args]

/** `env` adds to the environment, e.g. `EDGE_NET_GENESIS` for short governance periods. */
export const startNode = async (
  dataDir: string,
  port?: number,
  env: Readonly<Record<string, string>> = {}
): Promise<RunningNode> => {
  const chosen = port ?? (await freePort())
  const child = spawn(process.execPath, cliArgs("node", "start", "--data", dataDir, "--port", String(chosen)), {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, EDGE_NET_HOME: dataDir, ...SYSTEM_PICKED_P2P, ...env }
  })
  let output = ""
  child.stdout!.on("data", (chunk) => (output += chunk))
  child.stderr!.on("data", (chunk) => (output += chunk))
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  const url = `http://127.0.0.1:${chosen}`
  const deadline = Date.now() + 30_000
  while (true) {
    if (child.exitCode !== null) throw new Error(`node exited with ${child.exitCode}:\n${output}`)
    try {
      const response = await fetch(`${url}/health`)
      if (response.ok) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`node did not come up:\n${output}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return {
    url,
    dataDir,
    process: child,
    output: () => output,
    exited,
    kill: (signal) => {
      child.kill(signal)
      return exited
    }
  }
}
