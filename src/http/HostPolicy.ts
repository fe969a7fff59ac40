/**
 * Which `Host` and `Origin` a node answers to. A DNS-rebinding page reaches the node under the
 * attacker's name, so any other name is refused; a cross-site page has a foreign `Origin`.
 */
import { isIP } from "node:net"

export interface HostPolicyOptions {
  /** The address the server listens on (`127.0.0.1`, `0.0.0.0`, `::`, a name). */
  readonly host: string
  /** The port it listens on (after binding, so port 0 is resolved). */
  readonly port: number
  readonly allowedHosts?: ReadonlyArray<string> | undefined
  readonly publicUrl?: string | undefined
}

export interface HostPolicy {
  /** Whether a `Host` header names this node. */
  readonly allowsHost: (host: string) => boolean
  /** Whether an `Origin` is this node's own, reached at `host` (a `Host` already allowed). */
  readonly isOwnOrigin: (origin: string, host: string) => boolean
}

const wildcards = new Set(["0.0.0.0", "::", "[::]", ""])
const loopbacks = new Set(["localhost", "127.0.0.1", "[::1]"])

/** `::1` as it appears in a Host header: IPv6 literals are bracketed. */
const asHostName = (name: string) => (isIP(name) === 6 ? `[${name}]` : name).toLowerCase()

export const isWildcardAddress = (host: string) => wildcards.has(host)

/** True when only this machine can connect: a loopback address or `localhost`. */
export const isLoopbackAddress = (host: string) => {
  const name = asHostName(host)
  return loopbacks.has(name) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name)
}

/** Splits `name[:port]` (name possibly a bracketed IPv6 literal); port undefined when absent or not a number. */
export const splitHost = (host: string): { readonly name: string; readonly port: number | undefined } => {
  const lower = host.trim().toLowerCase()
  const close = lower.startsWith("[") ? lower.indexOf("]") + 1 : 0
  const colon = lower.indexOf(":", close)
  if (colon === -1) return { name: lower, port: undefined }
  const port = lower.slice(colon + 1)
  return { name: lower.slice(0, colon), port: /^\d{1,5}$/.test(port) ? Number(port) : Number.NaN }
}

const isIpLiteral = (name: string) => isIP(name.startsWith("[") ? name.slice(1, -1) : name) !== 0

export const hostPolicy = (options: HostPolicyOptions): HostPolicy => {
  const names = new Set(loopbacks)
  if (!isWildcardAddress(options.host)) names.add(asHostName(options.host))
  // Entries with their own port match exactly; bare names match on the node's port.
  const exact = new Set<string>()
  for (const entry of options.allowedHosts ?? []) {
    const { name, port } = splitHost(entry)
    if (port === undefined) names.add(asHostName(name))
    else exact.add(`${asHostName(name)}:${port}`)
  }
  const publicUrl = options.publicUrl === undefined ? undefined : new URL(options.publicUrl)
  if (publicUrl !== undefined) exact.add(publicUrl.host.toLowerCase())
  // Listening on every address, the node answers to each of its IPs; a rebinding page never
  // carries an IP literal (its Host is the attacker's name), so literals are safe to accept.
  const anyIpLiteral = isWildcardAddress(options.host)
  const allowsHost = (host: string) => {
    if (exact.has(host.trim().toLowerCase())) return true
    const { name, port } = splitHost(host)
    const onOurPort = (port ?? 80) === options.port
    return onOurPort && (names.has(name) || (anyIpLiteral && isIpLiteral(name)))
  }
  const isOwnOrigin = (origin: string, host: string) => {
    const lower = origin.trim().toLowerCase()
    const reached = host.trim().toLowerCase()
    return lower === `http://${reached}` || lower === `https://${reached}` ||
      (publicUrl !== undefined && lower === publicUrl.origin.toLowerCase())
  }
  return { allowsHost, isOwnOrigin }
}

/** What a node listening on `host` tells its operator at start when other machines can reach it. */
export const exposureWarning = (host: string): string | undefined =>
  isLoopbackAddress(host)
    ? undefined
    : `listening on ${host}: every state-changing call needs a signed command; reads are public`

/** `--public-url` as the Host policy reads it: an http(s) URL with no path, or why not. */
export const publicUrlProblem = (url: string): string | undefined => {
  if (!URL.canParse(url)) return `invalid --public-url "${url}": expected a URL such as https://node.example.com`
  const parsed = new URL(url)
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    return `invalid --public-url "${url}": expected http or https`
  }
  return undefined
}
