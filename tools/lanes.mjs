#!/usr/bin/env node
// Runs npm scripts in concurrent lanes and fails if any fails: `node tools/lanes.mjs a b+c` runs
// script a beside scripts b then c. Each lane's output is printed whole when the lane ends, so lanes
// never interleave. `npm test` uses it for its checks: tsc and eslint each keep one core busy, and
// one after the other they left the second core idle for most of a minute from a clean clone.
import { spawn } from "node:child_process"

const lanes = process.argv.slice(2).map((lane) => lane.split("+").filter((script) => script !== ""))
if (lanes.length === 0 || lanes.some((lane) => lane.length === 0)) {
  console.error("usage: node tools/lanes.mjs SCRIPT[+SCRIPT...] [SCRIPT[+SCRIPT...] ...]")
  process.exit(2)
}

const npm = process.platform === "win32" ? "npm.cmd" : "npm"

/** Runs one npm script with its output captured; resolves with its exit code and output. */
const runScript = (script) =>
  new Promise((resolve) => {
    const started = performance.now()
    const child = spawn(npm, ["run", "--silent", script], { stdio: ["ignore", "pipe", "pipe"] })
    const output = []
    child.stdout.on("data", (chunk) => output.push(chunk))
    child.stderr.on("data", (chunk) => output.push(chunk))
    child.on("error", (error) => output.push(Buffer.from(`${error.message}\n`)))
    child.on("close", (code, signal) =>
      resolve({ script, code: code ?? (signal === null ? 1 : 128), output: Buffer.concat(output), started }))
  })

const runLane = async (lane) => {
  for (const script of lane) {
    const result = await runScript(script)
    const seconds = ((performance.now() - result.started) / 1000).toFixed(1)
    process.stdout.write(`── ${script}: ${result.code === 0 ? "ok" : `failed (exit ${result.code})`} in ${seconds} s\n`)
    process.stdout.write(result.output)
    if (result.code !== 0) return result.code
  }
  return 0
}

const codes = await Promise.all(lanes.map(runLane))
process.exit(codes.find((code) => code !== 0) ?? 0)
