/**
 * The audit view: why an auction, a proposal, an account or an optimizer job is in the state it is in,
 * from its events alone (the node's `audit explain`, read over RPC), each event with its hash and cause.
 */
import { html } from "htm/preact"
import { useState } from "preact/hooks"
import { rpc } from "./Client.js"
import { at, list, short, text } from "./Json.js"
import { useRead } from "./Read.js"

export const EXPLAIN_KINDS = ["auction", "proposal", "account", "optimizer-job", "training-job", "round"] as const
export type ExplainKind = typeof EXPLAIN_KINDS[number]

const KIND_OF_CATEGORY: Readonly<Record<string, ExplainKind>> = {
  Auction: "auction",
  Proposal: "proposal",
  Account: "account",
  OptimizerJob: "optimizer-job",
  TrainingJob: "training-job",
  Round: "round"
}

export interface ExplainTarget {
  readonly kind: ExplainKind
  readonly id: string
}

/** The entity a stream holds, for the streams the audit explains. */
export const explainTargetOf = (streamId: string): ExplainTarget | undefined => {
  const dash = streamId.indexOf("-")
  const kind = KIND_OF_CATEGORY[streamId.slice(0, dash)]
  return dash < 0 || kind === undefined ? undefined : { kind, id: streamId.slice(dash + 1) }
}

const isKind = (value: string): value is ExplainKind => EXPLAIN_KINDS.some((kind) => kind === value)

export const AuditPanel = (
  { onTarget, target }: { target: ExplainTarget | undefined; onTarget: (target: ExplainTarget) => void }
) => {
  const [kind, setKind] = useState<ExplainKind>(target?.kind ?? "auction")
  const [id, setId] = useState(target?.id ?? "")
  const explained = useRead(
    () => (target === undefined
      ? Promise.resolve(undefined)
      : rpc("AuditExplain", { kind: target.kind, id: target.id })),
    [target?.kind, target?.id]
  )
  const submit = (event: Event) => {
    event.preventDefault()
    if (id.trim() !== "") onTarget({ kind, id: id.trim() })
  }
  const valueOf = (event: Event) =>
    event.currentTarget instanceof HTMLInputElement || event.currentTarget instanceof HTMLSelectElement
      ? event.currentTarget.value
      : ""
  return html`<section class="panel audit" id="audit" data-testid="audit">
    <h2>Audit: explain from the log</h2>
    <form onSubmit=${submit}>
      <select value=${target?.kind ?? kind} onChange=${(event: Event) => {
    const chosen = valueOf(event)
    if (isKind(chosen)) setKind(chosen)
  }}>
        ${EXPLAIN_KINDS.map((option) => html`<option value=${option}>${option}</option>`)}
      </select>
      <input placeholder="id" value=${id} onInput=${(event: Event) => setId(valueOf(event))} />
      <button type="submit">explain</button>
    </form>
    ${
    target === undefined
      ? html`<p class="muted">pick an auction, a proposal or an account, here or in the tables</p>`
      : null
  }
    ${explained.error === undefined ? null : html`<p class="error">${explained.error}</p>`}
    ${
    explained.value === undefined || target === undefined
      ? null
      : html`<div>
          <p class="why" data-testid="audit-why">${text(at(explained.value, "why"))}</p>
          <table>
            <thead><tr><th>#</th><th>v</th><th>event</th><th>recorded</th><th>command</th><th>caused by</th><th>hash</th></tr></thead>
            <tbody>${
        list(at(explained.value, "events")).map((event) =>
          html`<tr title=${JSON.stringify(at(event, "payload"), null, 2)}>
              <td>${text(at(event, "position"))}</td>
              <td>${text(at(event, "streamVersion"))}</td>
              <td>${text(at(event, "eventType"))}</td>
              <td>${text(at(event, "recordedAt"))}</td>
              <td>${short(at(event, "commandId"), 24)}</td>
              <td>${short(at(event, "causationId"), 24)}</td>
              <td title=${text(at(event, "hash"))}>${short(at(event, "hash"), 10)}</td>
            </tr>`
        )
      }</tbody>
          </table>
        </div>`
  }
  </section>`
}
