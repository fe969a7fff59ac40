/** The dashboard's page: every panel over one followed journal. */
import { html } from "htm/preact"
import { useEffect, useState } from "preact/hooks"
import { AuditPanel, type ExplainTarget, explainTargetOf } from "./AuditPanel.js"
import { followJournal, getJson } from "./Client.js"
import { GovernancePanel, MarketPanel, ModelsPanel } from "./EconomyPanels.js"
import { appendEvents, emptyJournal, type JournalView } from "./Journal.js"
import { at, num } from "./Json.js"
import { FeedPanel, PeersPanel, StatusPanel } from "./NodePanels.js"
import { PlaygroundPanel } from "./PlaygroundPanel.js"

/** Events of history the page reads before it goes live: enough for the charts, not the whole log. */
const HISTORY = 5000

export const App = () => {
  const [journal, setJournal] = useState<JournalView>(emptyJournal)
  const [connected, setConnected] = useState(false)
  const [target, setTarget] = useState<ExplainTarget | undefined>(undefined)
  const [problem, setProblem] = useState<string | undefined>(undefined)

  useEffect(() => {
    let stop = () => {}
    let cancelled = false
    getJson("/health").then((health) => {
      if (cancelled) return
      const head = num(at(health, "head", "position"))
      const from = Math.max(1, (Number.isFinite(head) ? head : 0) - HISTORY + 1)
      stop = followJournal(from, (events) => setJournal((view) => appendEvents(view, events)), setConnected)
    }, (error: unknown) =>
      setProblem(
        // fetch fails with a TypeError when nothing answers: the page itself came from the offline cache.
        error instanceof TypeError
          ? "the node cannot be reached: this page is the copy this browser kept, and the playground runs the models it cached"
          : error instanceof Error
          ? error.message
          : String(error)
      ))
    return () => {
      cancelled = true
      stop()
    }
  }, [])

  const explain = (streamId: string) => {
    const found = explainTargetOf(streamId)
    if (found !== undefined) setTarget(found)
  }

  return html`<main>
    <header>
      <h1>edge-net node</h1>
      <nav>
        <a href="#status">node</a> <a href="#feed">events</a> <a href="#models">models</a> <a href="#playground">playground</a>
        <a href="#market">market</a> <a href="#governance">governance</a> <a href="#audit">audit</a>
        <a href="/docs">API</a> <a href="/metrics">metrics</a>
      </nav>
    </header>
    ${problem === undefined ? null : html`<p class="error">${problem}</p>`}
    <div class="grid">
      <div id="status"><${StatusPanel} connected=${connected} journal=${journal} /></div>
      <div id="peers"><${PeersPanel} journal=${journal} /></div>
      <div id="feed" class="wide"><${FeedPanel} journal=${journal} onExplain=${explain} /></div>
      <div id="models" class="wide"><${ModelsPanel} journal=${journal} /></div>
      <div id="playground" class="wide"><${PlaygroundPanel} /></div>
      <div id="market"><${MarketPanel} journal=${journal} onExplain=${explain} /></div>
      <div id="governance"><${GovernancePanel} journal=${journal} onExplain=${explain} /></div>
      <div class="wide"><${AuditPanel}
        key=${target === undefined ? "" : `${target.kind}/${target.id}`}
        target=${target}
        onTarget=${setTarget}
      /></div>
    </div>
  </main>`
}
