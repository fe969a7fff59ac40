/**
 * How the dashboard reads its node: GET routes of the HTTP API, read-only RPCs over /rpc (NDJSON, as
 * @effect/rpc's HTTP protocol sends them), and the journal as server-sent events. Nothing here changes
 * state: the RPCs it may call are listed in READ_RPCS.
 */
import type { Json } from "./Json.js"
import { at, record, text } from "./Json.js"

export class NodeReadError extends Error {}

export const getJson = async (path: string): Promise<Json> => {
  const response = await fetch(path, { headers: { accept: "application/json" } })
  const body: Json = await response.json().catch(() => null)
  if (!response.ok) throw new NodeReadError(`${path}: ${text(at(body, "error")) || response.statusText}`)
  return body
}

/** The RPCs the page calls: every one a read. */
export const READ_RPCS = [
  "NodeInfo",
  "PeersList",
  "MarketPoolState",
  "AuctionState",
  "GovernanceList",
  "AuditExplain"
] as const
export type ReadRpc = typeof READ_RPCS[number]

let nextRequestId = 1

/** One RPC over HTTP: its success value, or a NodeReadError with the node's message. */
export const rpc = async (tag: ReadRpc, payload: Readonly<Record<string, Json>> = {}): Promise<Json> => {
  const id = String(nextRequestId++)
  const response = await fetch("/rpc", {
    method: "POST",
    headers: { "content-type": "application/ndjson" },
    body: JSON.stringify({ _tag: "Request", id, tag, payload, headers: [] }) + "\n"
  })
  if (!response.ok) throw new NodeReadError(`${tag}: ${response.status} ${response.statusText}`)
  const lines = (await response.text()).split("\n").filter((line) => line.trim() !== "")
  for (const line of lines) {
    const message: Json = JSON.parse(line)
    for (const candidate of Array.isArray(message) ? message : [message]) {
      if (text(at(candidate, "_tag")) !== "Exit") continue
      const exit = record(at(candidate, "exit"))
      if (text(exit["_tag"]) === "Success") return exit["value"]
      throw new NodeReadError(`${tag}: ${failureMessage(exit["cause"])}`)
    }
  }
  throw new NodeReadError(`${tag}: the node sent no reply`)
}

/** The message of a failed RPC's cause: its typed error's fields in one line. */
const failureMessage = (cause: Json): string => {
  const failure = at(cause, "failure")
  const error = record(failure ?? at(cause, "defect"))
  const tag = text(error["_tag"])
  const fields = Object.entries(error).filter(([key]) => key !== "_tag").map(([key, value]) => `${key} ${text(value)}`)
  return [tag, ...fields].filter((part) => part !== "").join(", ") || "failed"
}

export interface JournalEvent {
  readonly position: number
  readonly streamId: string
  readonly eventType: string
  readonly recordedAt: string
  readonly payload: Json
  readonly hash: string
  readonly commandId: string
}

const toEvent = (data: string): JournalEvent | undefined => {
  const envelope = record(JSON.parse(data))
  const position = envelope["position"]
  if (typeof position !== "number") return undefined
  return {
    position,
    streamId: text(envelope["streamId"]),
    eventType: text(envelope["eventType"]),
    recordedAt: text(envelope["recordedAt"]),
    payload: envelope["payload"],
    hash: text(envelope["hash"]),
    commandId: text(envelope["commandId"])
  }
}

/** The journal from `from` on, then live; the browser reconnects from the last id by itself. */
export const followJournal = (
  from: number,
  onEvents: (events: ReadonlyArray<JournalEvent>) => void,
  onState: (connected: boolean) => void
): () => void => {
  const source = new EventSource(`/v1/events/stream?from=${from}`)
  // Catch-up sends thousands of events at once: hand them over in batches, not one by one.
  let pending: Array<JournalEvent> = []
  let scheduled = false
  const flush = () => {
    scheduled = false
    const batch = pending
    pending = []
    onEvents(batch)
  }
  source.addEventListener("journal", (message) => {
    const event = toEvent(message.data)
    if (event === undefined) return
    pending.push(event)
    if (!scheduled) {
      scheduled = true
      setTimeout(flush, 50)
    }
  })
  source.addEventListener("open", () => onState(true))
  source.addEventListener("error", () => onState(source.readyState === EventSource.OPEN))
  return () => source.close()
}
