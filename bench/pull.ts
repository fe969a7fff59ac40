/**
 * Pull benchmark: a 1 GiB blob over loopback HTTP, downloaded in parallel ranges, hashed while it
 * streams in and moved into the blob store, against `curl -o` then `sha256sum` on the same file from
 * the same server, and against the same work streamed by the usual tools, `curl | tee | openssl
 * dgst -sha256` (alternating, best of three each), and against the floor of any verified pull here:
 * `curl -o` with one SHA-256 pass over as many bytes running beside it; and our SHA-256 throughput
 * against `sha256sum` and against pure-JS @noble/hashes.
 * `PULL_BENCH_BYTES` sets the size; `PULL_BENCH_HASH_THREAD_FROM` the size from which the whole-file hash
 * runs on its own thread (a huge value keeps it on the main thread, for comparison).
 */
import { Effect } from "effect"
import { execFile, spawn } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as readline from "node:readline"
import { promisify } from "node:util"
import { BlobStore } from "../src/content/BlobStore.js"
import { download } from "../src/content/Downloader.js"
import { createPortableSha256, createSha256 } from "../src/content/Sha256.js"
import { httpSource } from "../src/content/Sources.js"
import { report, time } from "./Report.js"
import { commandPeakRssMb, peakRssMb, resetPeakRss } from "./support/PeakRss.js"

const exec = promisify(execFile)
const SIZE = Number(process.env["PULL_BENCH_BYTES"] ?? 1024 ** 3)
const MiB = 1024 * 1024
const PULL_ROUNDS = 3

/** Writes `size` pseudo-random bytes (incompressible, cheap to make) and returns their sha256. */
const makeFile = (file: string, size: number) => {
  const hash = crypto.createHash("sha256")
  const fd = fs.openSync(file, "w")
  const block = crypto.randomBytes(16 * MiB)
  for (let written = 0, round = 0; written < size; round++) {
    block.writeUInt32LE(round, 0) // no two blocks alike
    const length = Math.min(block.length, size - written)
    fs.writeSync(fd, block, 0, length)
    hash.update(block.subarray(0, length))
    written += length
  }
  fs.closeSync(fd)
  return hash.digest("hex")
}

const startServer = async (root: string) => {
  const child = spawn(process.execPath, [
    "--import",
    "tsx",
    "test/support/static-server.ts",
    "--root",
    root,
    "--port",
    "0"
  ], {
    stdio: ["ignore", "pipe", "inherit"]
  })
  const lines = readline.createInterface({ input: child.stdout! })
  const port = await new Promise<number>((resolve, reject) => {
    lines.on("line", (line) => {
      const message = JSON.parse(line) as { listening?: number }
      if (message.listening !== undefined) resolve(message.listening)
    })
    child.once("exit", (code) => reject(new Error(`static server exited with ${code}`)))
  })
  return { url: `http://127.0.0.1:${port}`, stop: () => child.kill("SIGTERM") }
}

const hashFile = async (file: string, create: typeof createSha256) => {
  const hash = create()
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 4 * MiB }) as AsyncIterable<Buffer>) {
    hash.update(chunk)
  }
  return hash.digest()
}

export const run = async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "edge-net-pull-bench-"))
  try {
    const served = path.join(dir, "served")
    fs.mkdirSync(served)
    const file = path.join(served, "model.onnx")
    const sha256 = makeFile(file, SIZE)
    const server = await startServer(served)
    try {
      const url = `${server.url}/model.onnx`
      const copy = path.join(dir, "curl.bin")
      // Warm the page cache so both sides read the served file from memory.
      await exec("sha256sum", [file])

      const curlOnce = () => exec("curl", ["-s", "-f", "-o", copy, url])
      // Download, write and hash at once, each by its own process: what a verified pull costs this
      // machine without edge-net (openssl's SHA-256 uses the CPU's SHA extensions, as node:crypto does).
      const streamOnce = async () => {
        const { stdout } = await exec("bash", [
          "-o",
          "pipefail",
          "-c",
          `curl -s -f '${url}' | tee '${copy}' | openssl dgst -sha256 -r`
        ])
        if (!stdout.startsWith(sha256)) throw new Error("curl | tee | openssl disagrees")
      }
      // The floor of any verified pull on this machine: the transfer as curl does it, with one SHA-256
      // pass over as many bytes beside it (in memory, on this process's thread, while curl runs). A pull
      // must at least receive, write and hash every byte once; on two cores the server and curl already
      // keep about one and a half busy, so the hash cannot hide behind the transfer.
      const hashBlock = crypto.randomBytes(MiB)
      const floorOnce = async () => {
        const transfer = exec("curl", ["-s", "-f", "-o", copy, url])
        const hash = crypto.createHash("sha256")
        for (let hashed = 0; hashed < SIZE; hashed += hashBlock.length) {
          hash.update(hashBlock.subarray(0, Math.min(hashBlock.length, SIZE - hashed)))
        }
        hash.digest()
        await transfer
      }
      const sumOnce = async () => {
        const { stdout } = await exec("sha256sum", [copy])
        if (!stdout.startsWith(sha256)) throw new Error("sha256sum disagrees")
      }

      // From the sources, a thread's module is bundled on its first start (src/node/ModuleWorker.ts);
      // from dist it is not: a small pull first, so the hashing thread's bundle is not timed.
      const warm = path.join(served, "warm.bin")
      const warmSha256 = makeFile(warm, MiB)
      await Effect.runPromise(
        download({ sha256: warmSha256, size: MiB, label: "bench/warm.bin" }, [httpSource(`${server.url}/warm.bin`)], {
          partialDir: path.join(dir, "warm"),
          hashThreadFrom: 0
        })
      )

      let fetched = 0
      let round = 0
      const ourPull = () =>
        Effect.runPromise(
          Effect.gen(function*() {
            const store = yield* BlobStore
            const result = yield* download({ sha256, size: SIZE, label: "bench/model.onnx" }, [
              httpSource(url, "loopback")
            ], {
              partialDir: store.partialDir,
              parallel: 4,
              ...(process.env["PULL_BENCH_HASH_THREAD_FROM"] === undefined
                ? {}
                : { hashThreadFrom: Number(process.env["PULL_BENCH_HASH_THREAD_FROM"]) })
            })
            fetched = result.bytesFetched
            yield* store.adopt(result.path, { sha256: result.sha256, size: result.size, layout: result.layout })
          }).pipe(Effect.provide(BlobStore.layer({ root: path.join(dir, `store-${round++}`), maxBytes: 4 * SIZE })))
        )
      // One transfer of 1 GiB over loopback took curl 1.4 s in one run and 2.5 s in the next on the
      // shared machine (the kernel reclaiming page cache, the other core busy): the two sides alternate
      // and each keeps its best of three, as the journal's append does. Each pull goes to a new store.
      let curlSeconds = Number.POSITIVE_INFINITY
      let sumSeconds = Number.POSITIVE_INFINITY
      let streamSeconds = Number.POSITIVE_INFINITY
      let floorSeconds = Number.POSITIVE_INFINITY
      let ourSeconds = Number.POSITIVE_INFINITY
      resetPeakRss()
      for (let run = 0; run < PULL_ROUNDS; run++) {
        curlSeconds = Math.min(curlSeconds, await time(curlOnce))
        sumSeconds = Math.min(sumSeconds, await time(sumOnce))
        fs.rmSync(copy)
        streamSeconds = Math.min(streamSeconds, await time(streamOnce))
        fs.rmSync(copy)
        floorSeconds = Math.min(floorSeconds, await time(floorOnce))
        fs.rmSync(copy)
        ourSeconds = Math.min(ourSeconds, await time(ourPull))
        if (fetched !== SIZE) throw new Error(`fetched ${fetched} of ${SIZE} bytes`)
        fs.rmSync(path.join(dir, `store-${run}`), { recursive: true })
      }
      // The peak over the three pulls (curl and sha256sum run as processes of their own).
      const ourPeakMb = peakRssMb()
      const mib = SIZE / MiB
      report(
        `pull ${mib} MiB: 4 ranges + streaming verify + store`,
        "MiB/s",
        mib / ourSeconds,
        mib / (curlSeconds + sumSeconds),
        "curl+sha256sum",
        ">= 1.0"
      )
      // Issue 19's figure: against the transfer alone, which verifies nothing.
      report(
        `pull ${mib} MiB, against the transfer alone`,
        "MiB/s",
        mib / ourSeconds,
        mib / curlSeconds,
        "curl -o",
        ">= 0.8"
      )
      // What issue 19's figure can reach here: the floor against the transfer alone. Below 0.8, no
      // verified pull can meet that target on this machine, however little else it does.
      report(
        `verified-pull floor: curl -o beside one SHA-256 pass`,
        "MiB/s",
        mib / floorSeconds,
        mib / curlSeconds,
        "curl -o"
      )
      report(`pull ${mib} MiB, against the floor`, "MiB/s", mib / ourSeconds, mib / floorSeconds, "curl -o + SHA-256")
      report(
        `pull ${mib} MiB, against a streamed verify`,
        "MiB/s",
        mib / ourSeconds,
        mib / streamSeconds,
        "curl | tee | openssl sha256"
      )
      console.log(
        `  (ours ${ourSeconds.toFixed(2)} s; curl ${curlSeconds.toFixed(2)} s + sha256sum ${
          sumSeconds.toFixed(2)
        } s; curl | tee | openssl ${streamSeconds.toFixed(2)} s; curl -o beside SHA-256 ${floorSeconds.toFixed(2)} s)`
      )
      // The pull's memory: this process's peak while it ran, against curl's own peak on the same file.
      const curlPeakMb = await commandPeakRssMb("curl", ["-s", "-f", "-o", copy, url])
      fs.rmSync(copy)
      report(`peak RSS, pull ${mib} MiB (bench process)`, "MB", ourPeakMb, curlPeakMb, "curl -o")

      const nodeSeconds = await time(() => hashFile(file, createSha256))
      const sha256sumSeconds = await time(() => exec("sha256sum", [file]))
      report(
        "sha256 of the file (node:crypto)",
        "MiB/s",
        mib / nodeSeconds,
        mib / sha256sumSeconds,
        "sha256sum",
        ">= 0.9"
      )
    } finally {
      server.stop()
    }
    const sample = crypto.randomBytes(64 * MiB)
    const nodeSample = await time(() => createSha256().update(sample).digest())
    const nobleSample = await time(() => createPortableSha256().update(sample).digest())
    report("sha256 64 MiB in memory: node:crypto", "MiB/s", 64 / nodeSample, 64 / nobleSample, "@noble/hashes")
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}
