/** The node itself: its identity, journal head and policies; its peers; and the live event feed. */
import { html } from "htm/preact"
import { useEffect, useState } from "preact/hooks"
import { Chart } from "./Chart.js"
import { rpc } from "./Client.js"
import type { JournalView } from "./Journal.js"
import { categoryOf, rateSeries } from "./Journal.js"
import type { Json } from "./Json.js"
import { at, list, record, short, text } from "./Json.js"
import { useOfflineCopy } from "./Offline.js"
import { useRead } from "./Read.js"

export const StatusPanel = ({ connected, journal }: { connected: boolean; journal: JournalView }) => {
  // Read again when a policy or dead letter may have moved: every 20 events is plenty for an overview.
  const info = useRead(() => rpc("NodeInfo"), [Math.floor(journal.head / 20)])
  const node = record(info.value)
  const deadLetters = list(node["deadLetters"])
  const offline = useOfflineCopy()
  return html`<section class="panel status" data-testid="status">
    <h2>Node</h2>
    ${info.error === undefined ? null : html`<p class="error">${info.error}</p>`}
    <dl>
      <dt>node</dt><dd title=${text(node["publicKey"])}>${text(node["nodeId"])}</dd>
      <dt>network</dt><dd>${text(node["network"]) || "(no charter yet)"}</dd>
      <dt>version</dt><dd>${text(node["version"])}</dd>
      <dt>journal</dt><dd data-testid="head">${journal.head} events, head ${short(at(node, "head", "hash"), 16)}</dd>
      <dt>live feed</dt><dd class=${connected ? "ok" : "bad"}>${connected ? "connected" : "reconnecting"}</dd>
      <dt>offline copy</dt><dd data-testid="offline-copy" class=${offline === "kept" ? "ok" : ""}>${
    offline === "kept"
      ? "kept in this browser"
      : offline === "pending"
      ? "being kept"
      : "none (needs https or localhost)"
  }</dd>
      <dt>operators</dt><dd>${text(node["operatorThreshold"])} of ${list(node["operators"]).length}</dd>
      <dt>sequencer</dt><dd>${
    text(node["sequencer"]) === "" ? "this node (own economy)" : short(node["sequencer"])
  }</dd>
      <dt>dead letters</dt><dd class=${deadLetters.length === 0 ? "ok" : "bad"}>${deadLetters.length}</dd>
    </dl>
    <table>
      <thead><tr><th>policy</th><th>checkpoint</th><th>lag</th></tr></thead>
      <tbody>${
    list(node["policies"]).map((policy) =>
      html`<tr><td>${text(at(policy, "name"))}</td><td>${text(at(policy, "checkpoint"))}</td><td>${
        text(at(policy, "lag"))
      }</td></tr>`
    )
  }</tbody>
    </table>
  </section>`
}

export const PeersPanel = ({ journal }: { journal: JournalView }) => {
  const [tick, setTick] = useState(0)
  useEffect(() => {
    const timer = setInterval(() => setTick((value) => value + 1), 10_000)
    return () => clearInterval(timer)
  }, [])
  const peers = useRead(() => rpc("PeersList"), [tick, journal.changes["Peer"] ?? 0])
  const view = record(peers.value)
  return html`<section class="panel peers" data-testid="peers">
    <h2>Peers</h2>
    ${peers.error === undefined ? null : html`<p class="error">${peers.error}</p>`}
    <p>peer id <code>${text(view["peerId"]) || "(not running)"}</code></p>
    <p class="muted">${list(view["listening"]).map(text).join(" ")}</p>
    <table>
      <thead><tr><th>peer</th><th>source</th><th>connected</th><th>latency</th><th>follow</th></tr></thead>
      <tbody>${
    list(view["peers"]).length === 0
      ? html`<tr><td colspan="5" class="muted">no peers yet</td></tr>`
      : list(view["peers"]).map((peer: Json) =>
        html`<tr>
          <td title=${text(at(peer, "peerId"))}>${short(at(peer, "peerId"), 16)}</td>
          <td>${text(at(peer, "source"))}</td>
          <td class=${at(peer, "connected") === true ? "ok" : "bad"}>${
          at(peer, "connected") === true ? "yes" : "no"
        }</td>
          <td>${at(peer, "latencyMs") === null ? "" : `${text(at(peer, "latencyMs"))} ms`}</td>
          <td>${at(peer, "follow") === true ? "yes" : ""}</td>
        </tr>`
      )
  }</tbody>
    </table>
    ${
    list(view["forkProofs"]).length === 0
      ? null
      : html`<p class="bad">${list(view["forkProofs"]).length} fork proof(s): a peer signed two histories</p>`
  }
  </section>`
}

export const FeedPanel = ({ journal, onExplain }: { journal: JournalView; onExplain: (streamId: string) => void }) => {
  const [filter, setFilter] = useState("")
  const [now, setNow] = useState(Date.now())
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000)
    return () => clearInterval(timer)
  }, [])
  const rate = rateSeries(journal.rate, now)
  const shown = journal.feed.filter((event) =>
    filter === "" || event.eventType.toLowerCase().includes(filter) || event.streamId.toLowerCase().includes(filter)
  ).slice(0, 60)
  return html`<section class="panel feed" data-testid="feed">
    <h2>Live events</h2>
    <${Chart}
      title="events per second"
      testId="rate-chart"
      times=${rate.times}
      series=${[{ label: "events/s", values: rate.values, color: "#4f9cf9" }]}
    />
    <input
      placeholder="filter by event type or stream"
      value=${filter}
      onInput=${(event: Event) =>
    setFilter(event.currentTarget instanceof HTMLInputElement ? event.currentTarget.value.toLowerCase() : "")}
    />
    <table>
      <thead><tr><th>#</th><th>event</th><th>stream</th><th>recorded</th><th>hash</th></tr></thead>
      <tbody>${
    shown.map((event) =>
      html`<tr data-testid="feed-row">
        <td>${event.position}</td>
        <td>${event.eventType}</td>
        <td>${
        ["Auction", "Proposal", "Account", "OptimizerJob"].includes(categoryOf(event.streamId))
          ? html`<a href="#audit" onClick=${() => onExplain(event.streamId)}>${event.streamId}</a>`
          : event.streamId
      }</td>
        <td>${event.recordedAt.replace("T", " ").replace(/\.\d+Z$/, "Z")}</td>
        <td title=${event.hash}>${short(event.hash, 10)}</td>
      </tr>`
    )
  }</tbody>
    </table>
  </section>`
}
