/** The registry's models and adapters, the compute market (pool, price, auctions) and governance. */
import { html } from "htm/preact"
import { checkSignatures, type SignatureCheck } from "../browser/Signatures.js"
import { Chart } from "./Chart.js"
import { getJson, rpc } from "./Client.js"
import type { JournalView } from "./Journal.js"
import type { Json } from "./Json.js"
import { at, bytes, list, record, short, text } from "./Json.js"
import { useRead } from "./Read.js"

const error = (message: string | undefined) => message === undefined ? null : html`<p class="error">${message}</p>`

/** A model's manifest fetched and its signatures checked here, in the page; whether this node signed it. */
const SignatureCell = ({ id, nodeKey, version }: { id: string; version: string; nodeKey: string }) => {
  const checked = useRead(
    () =>
      getJson(`/v1/models/${encodeURIComponent(id)}?version=${encodeURIComponent(version)}`).then((manifest) =>
        checkSignatures(manifest)
      ),
    [id, version]
  )
  if (checked.error !== undefined) return html`<td class="bad" title=${checked.error}>unreadable</td>`
  const check = checked.value
  if (!isCheck(check)) return html`<td class="muted">checking…</td>`
  if (check.invalid.length > 0) {
    return html`<td class="bad" data-testid="signature">bad signature by ${check.invalid.join(", ")}</td>`
  }
  if (check.valid.length === 0) return html`<td class="bad" data-testid="signature">unsigned</td>`
  const byNode = nodeKey !== "" && check.publicKeys.includes(nodeKey)
  return html`<td class="ok" data-testid="signature" title=${check.publicKeys.join("\n")}>
    ✓ ${check.valid.length} valid${byNode ? " · this node" : ""}
  </td>`
}

const isCheck = (value: unknown): value is SignatureCheck =>
  typeof value === "object" && value !== null && "valid" in value && "invalid" in value

const artifactBytes = (model: Json) => text(at(model, "size")) === "" ? "" : bytes(at(model, "size"))

export const ModelsPanel = ({ journal }: { journal: JournalView }) => {
  const changes = (journal.changes["Model"] ?? 0) + (journal.changes["Adapter"] ?? 0)
  const models = useRead(() => getJson("/v1/models"), [changes])
  const info = useRead(() => rpc("NodeInfo"), [])
  const nodeKey = text(at(info.value, "publicKey"))
  const adapters = useRead(() => getJson("/v1/adapters"), [changes])
  return html`<section class="panel models" data-testid="models">
    <h2>Models</h2>
    ${error(models.error)}
    <table>
      <thead><tr><th>id</th><th>version</th><th>type</th><th>precision</th><th>size</th><th>publisher</th><th>signature (checked here)</th></tr></thead>
      <tbody>${
    list(models.value).length === 0
      ? html`<tr><td colspan="7" class="muted">${models.loading ? "loading…" : "no models published yet"}</td></tr>`
      : list(models.value).map((model) =>
        html`<tr data-testid="model-row">
          <td><a href=${`/v1/models/${encodeURIComponent(text(at(model, "id")))}`} target="_blank">${
          text(at(model, "id"))
        }</a></td>
          <td>${text(at(model, "version"))}</td>
          <td>${text(at(model, "type"))}</td>
          <td>${text(at(model, "quantization")) || "FP32"}</td>
          <td>${artifactBytes(model)}</td>
          <td title=${`${text(at(model, "publishedBy"))} at ${text(at(model, "publishedAt"))}`}>${
          short(at(model, "keyId"), 12)
        }</td>
          <${SignatureCell} id=${text(at(model, "id"))} version=${text(at(model, "version"))} nodeKey=${nodeKey} />
        </tr>`
      )
  }</tbody>
    </table>
    <h3>Adapters</h3>
    ${error(adapters.error)}
    <table>
      <thead><tr><th>id</th><th>version</th><th>base model</th><th>publisher</th></tr></thead>
      <tbody>${
    list(adapters.value).length === 0
      ? html`<tr><td colspan="4" class="muted">no adapters shared yet</td></tr>`
      : list(adapters.value).map((adapter) =>
        html`<tr>
          <td>${text(at(adapter, "id"))}</td>
          <td>${text(at(adapter, "version"))}</td>
          <td>${text(at(adapter, "baseModel"))}</td>
          <td>${short(at(adapter, "keyId"), 12)}</td>
        </tr>`
      )
  }</tbody>
    </table>
  </section>`
}

export const MarketPanel = (
  { journal, onExplain }: { journal: JournalView; onExplain: (streamId: string) => void }
) => {
  const pool = useRead(() => rpc("MarketPoolState"), [journal.changes["Pool"] ?? 0])
  const view = record(at(pool.value, "pool"))
  const pricing = record(view["pricing"])
  const compute = Number(text(pricing["compute"]))
  const price = compute > 0 ? Number(text(pricing["ruv"])) / compute : Number.NaN
  const auctionIds = journal.auctions.slice(0, 12)
  const auctions = useRead(
    () => Promise.all(auctionIds.map((auctionId) => rpc("AuctionState", { auctionId }).catch(() => null))),
    [auctionIds.join(","), journal.changes["Auction"] ?? 0]
  )
  const prices = journal.prices
  return html`<section class="panel market" data-testid="market">
    <h2>Market</h2>
    ${error(pool.error)}
    <dl>
      <dt>price</dt><dd data-testid="pool-price">${
    Number.isFinite(price) ? `${price.toPrecision(6)} rUv per compute unit` : "no liquidity yet"
  }</dd>
      <dt>reserves</dt><dd>${text(view["compute"])} compute, ${text(view["ruv"])} rUv (real)</dd>
      <dt>virtual</dt><dd>${text(view["virtualCompute"])} compute, ${text(view["virtualRuv"])} rUv</dd>
      <dt>shares</dt><dd>${text(view["totalShares"])}</dd>
    </dl>
    ${
    prices.length === 0
      ? html`<p class="muted">no trades in the log yet: the price chart starts with the first swap</p>`
      : html`<${Chart}
          title="pool price and pricing reserves"
          testId="price-chart"
          times=${prices.map((point) => point.time)}
          series=${[
        { label: "price (rUv/compute)", values: prices.map((point) => point.price), color: "#f5a524", right: true },
        { label: "compute", values: prices.map((point) => point.compute), color: "#4f9cf9" },
        { label: "rUv", values: prices.map((point) => point.ruv), color: "#17c964" }
      ]}
        />`
  }
    <h3>Auctions</h3>
    ${error(auctions.error)}
    <table>
      <thead><tr><th>auction</th><th>status</th><th>max price</th><th>bids</th><th>winner</th><th>price</th></tr></thead>
      <tbody>${
    auctionIds.length === 0
      ? html`<tr><td colspan="6" class="muted">no auctions in the log</td></tr>`
      : list(auctions.value).map((auction, index) =>
        html`<tr>
          <td><a href="#audit" onClick=${() => onExplain(`Auction-${auctionIds[index] ?? ""}`)}>${
          auctionIds[index]
        }</a></td>
          <td>${text(at(auction, "status"))}</td>
          <td>${text(at(auction, "maxPrice"))}</td>
          <td title=${
          list(at(auction, "bids")).map((bid) => `${text(at(bid, "bidder"))}: ${text(at(bid, "price")) || "sealed"}`)
            .join("\n")
        }>${list(at(auction, "bids")).length}</td>
          <td>${short(at(auction, "winner"))}</td>
          <td>${text(at(auction, "price"))}</td>
        </tr>`
      )
  }</tbody>
    </table>
  </section>`
}

export const GovernancePanel = (
  { journal, onExplain }: { journal: JournalView; onExplain: (streamId: string) => void }
) => {
  const proposals = useRead(() => rpc("GovernanceList"), [journal.changes["Proposal"] ?? 0])
  return html`<section class="panel governance" data-testid="governance">
    <h2>Governance</h2>
    ${error(proposals.error)}
    <table>
      <thead><tr><th>proposal</th><th>status</th><th>parameter</th><th>value</th><th>proposer</th><th>description</th></tr></thead>
      <tbody>${
    list(proposals.value).length === 0
      ? html`<tr><td colspan="6" class="muted">no proposals yet</td></tr>`
      : list(proposals.value).map((proposal) =>
        html`<tr>
          <td><a href="#audit" onClick=${() => onExplain(`Proposal-${text(at(proposal, "proposalId"))}`)}>${
          text(at(proposal, "proposalId"))
        }</a></td>
          <td>${text(at(proposal, "status"))}</td>
          <td>${text(at(proposal, "parameter"))}</td>
          <td>${text(at(proposal, "value"))}</td>
          <td>${short(at(proposal, "proposer"))}</td>
          <td>${text(at(proposal, "description"))}</td>
        </tr>`
      )
  }</tbody>
    </table>
  </section>`
}
