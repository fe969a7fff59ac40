/**
 * A plain static HTTP server for tests, run as its own process: serves a directory with single-range
 * `Range` support, logs every request as a JSON line on stdout, and can be told to corrupt one byte
 * (`--flip path:offset`) to play a CDN that serves wrong bytes.
 *
 *   node --import tsx test/support/static-server.ts --root DIR --port N [--flip rel/path:offset]
 */
import * as fs from "node:fs"
import * as http from "node:http"
import * as path from "node:path"

const argument = (name: string) => {
  const index = process.argv.indexOf(`--${name}`)
  return index === -1 ? undefined : process.argv[index + 1]
}

const root = path.resolve(argument("root") ?? ".")
const port = Number(argument("port") ?? 0)
const flip = argument("flip")
const [flipPath, flipOffset] = flip === undefined
  ? [undefined, -1]
  : [flip.slice(0, flip.lastIndexOf(":")), Number(flip.slice(flip.lastIndexOf(":") + 1))]

const server = http.createServer((request, response) => {
  const url = new URL(request.url ?? "/", "http://localhost")
  const relative = decodeURIComponent(url.pathname).replace(/^\/+/, "")
  const file = path.join(root, relative)
  const log = (status: number, bytes: number, range?: string) =>
    process.stdout.write(JSON.stringify({ method: request.method, path: relative, status, bytes, range }) + "\n")
  if (!file.startsWith(root) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
    response.writeHead(404).end("not found")
    return log(404, 0)
  }
  const size = fs.statSync(file).size
  const header = request.headers["range"]
  const match = header === undefined ? null : /^bytes=(\d*)-(\d*)$/.exec(header)
  let start = 0
  let end = size - 1
  let status = 200
  if (match !== null) {
    start = match[1] === "" ? Math.max(0, size - Number(match[2])) : Number(match[1])
    end = match[1] !== "" && match[2] !== "" ? Math.min(Number(match[2]), size - 1) : size - 1
    if (start >= size || end < start) {
      response.writeHead(416, { "content-range": `bytes */${size}` }).end()
      return log(416, 0, header)
    }
    status = 206
  }
  const headers: http.OutgoingHttpHeaders = {
    "content-length": end - start + 1,
    "accept-ranges": "bytes",
    "content-type": relative.endsWith(".json") || relative.startsWith("v1/")
      ? "application/json"
      : "application/octet-stream"
  }
  if (status === 206) headers["content-range"] = `bytes ${start}-${end}/${size}`
  response.writeHead(status, headers)
  if (request.method === "HEAD") {
    response.end()
    return log(status, 0, header)
  }
  const corrupt = relative === flipPath && flipOffset >= start && flipOffset <= end
  const stream = fs.createReadStream(file, { start, end })
  let position = start
  stream.on("data", (chunk) => {
    const bytes = chunk as Buffer
    if (corrupt && flipOffset >= position && flipOffset < position + bytes.length) {
      bytes[flipOffset - position] = bytes[flipOffset - position]! ^ 0xff
    }
    position += bytes.length
    response.write(bytes)
  })
  stream.on("end", () => response.end())
  // Logged when the exchange ends, so a client that gave up early shows what it really received.
  response.on("close", () => {
    stream.destroy()
    log(status, position - start, header)
  })
})

server.listen(port, "127.0.0.1", () => {
  const address = server.address() as { port: number }
  process.stdout.write(JSON.stringify({ listening: address.port }) + "\n")
})
process.on("SIGTERM", () => server.close(() => process.exit(0)))
