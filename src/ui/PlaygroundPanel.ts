/**
 * The playground: pull a model of the catalog into this page through the browser SDK (/ui/sdk.js,
 * loaded when first used, so the dashboard itself stays small), verified against this node's key and
 * cached in IndexedDB, then run an embedding or a generation here, in the browser (in a Web Worker, so
 * the page's live views keep moving meanwhile), timed.
 */
import { html } from "htm/preact"
import { useEffect, useState } from "preact/hooks"
import type * as Sdk from "../browser/index.js"
import { getJson, rpc } from "./Client.js"
import { at, bytes, list, text } from "./Json.js"
import { useRead } from "./Read.js"

/** The SDK as the node serves it; a URL, not a path esbuild would bundle. */
const SDK_URL = "/ui/sdk.js"

let sdk: Promise<typeof Sdk> | undefined
const loadSdk = (): Promise<typeof Sdk> => (sdk ??= import(/* @vite-ignore */ SDK_URL))

interface Outcome {
  readonly model: string
  readonly source: string
  readonly backend: string
  readonly loadMs: number
  readonly runMs: number
  readonly result: string
}

const RUNNABLE_TYPES = new Set(["embedding", "text-generation"])

/**
 * Where the page keeps the node's public key it last read, so that offline (NodeInfo cannot be asked)
 * the models this browser cached under that key still verify and run.
 */
const NODE_KEY_ITEM = "edge-net-node-key"

const rememberedKey = (): string => {
  try {
    return globalThis.localStorage?.getItem(NODE_KEY_ITEM) ?? ""
  } catch {
    // Storage can be refused (a privacy setting): the playground then works online only.
    return ""
  }
}

const rememberKey = (key: string) => {
  try {
    globalThis.localStorage?.setItem(NODE_KEY_ITEM, key)
  } catch {
    // As above: nothing is kept, and nothing else depends on it.
  }
}

const describeVector = (vector: Float32Array) =>
  `${vector.length} dimensions, |v| = ${
    Math.sqrt(vector.reduce((sum, value) => sum + value * value, 0)).toFixed(4)
  }: [${Array.from(vector.slice(0, 6), (value) => value.toFixed(4)).join(", ")}, …]`

/** The playground panel: a model picker, an input, and the in-browser result with its timings. */
export const PlaygroundPanel = () => {
  const models = useRead(() => getJson("/v1/models"), [])
  const info = useRead(() => rpc("NodeInfo"), [])
  const readKey = text(at(info.value, "publicKey"))
  const nodeKey = readKey || (info.loading ? "" : rememberedKey())
  useEffect(() => {
    if (readKey !== "") rememberKey(readKey)
  }, [readKey])
  const choices = list(models.value).filter((model) => RUNNABLE_TYPES.has(text(at(model, "type"))))
  const [chosen, setChosen] = useState("")
  const [input, setInput] = useState("the whale surfaced beside the ship")
  const [progress, setProgress] = useState<string | undefined>(undefined)
  const [outcome, setOutcome] = useState<Outcome | undefined>(undefined)
  const [problem, setProblem] = useState<string | undefined>(undefined)
  const [busy, setBusy] = useState(false)
  const modelId = chosen || text(at(choices[0], "id"))
  const type = text(at(choices.find((model) => text(at(model, "id")) === modelId), "type"))

  const run = async () => {
    setBusy(true)
    setProblem(undefined)
    setOutcome(undefined)
    try {
      const { ModelLoader, WorkerSession } = await loadSdk()
      const loader = await ModelLoader.create({ trustedKeys: [nodeKey] })
      const started = performance.now()
      const model = await loader.load(modelId, {
        onProgress: (step) =>
          setProgress(`${step.phase} ${step.artifact} ${bytes(step.loadedBytes)} of ${bytes(step.totalBytes)}`.trim())
      })
      loader.close()
      const session = await WorkerSession.create(model, { backend: "auto" })
      const loadMs = performance.now() - started
      const ran = performance.now()
      const result = session.kind === "encoder"
        ? describeVector((await session.embed([input]))[0]!)
        : await session.generate(input, { maxTokens: 32 })
      const runMs = performance.now() - ran
      await session.dispose()
      setOutcome({
        model: `${model.id}@${model.version}`,
        source: model.fromCache ? "IndexedDB" : "the node",
        backend: session.backend,
        loadMs,
        runMs,
        result
      })
    } catch (error) {
      setProblem(error instanceof Error ? error.message : String(error))
    } finally {
      setProgress(undefined)
      setBusy(false)
    }
  }

  return html`<section class="panel playground" data-testid="playground">
    <h2>Playground (runs in this page)</h2>
    <p class="muted">The model is pulled into this browser, verified against this node's signature, cached in IndexedDB and run on onnxruntime-web in a Web Worker.</p>
    <select data-testid="playground-model" value=${modelId} onChange=${(event: Event) =>
    setChosen((event.target as HTMLSelectElement).value)}>
      ${choices.map((model) => html`<option value=${text(at(model, "id"))}>${text(at(model, "id"))}</option>`)}
    </select>
    <input data-testid="playground-input" size="50" value=${input} onInput=${(event: Event) =>
    setInput((event.target as HTMLInputElement).value)} />
    <button data-testid="playground-run" disabled=${busy || modelId === "" || nodeKey === ""} onClick=${run}>
      ${type === "text-generation" ? "generate" : "embed"} in the browser
    </button>
    ${progress === undefined ? null : html`<p class="muted" data-testid="playground-progress">${progress}</p>`}
    ${problem === undefined ? null : html`<p class="error" data-testid="playground-error">${problem}</p>`}
    ${
    outcome === undefined ? null : html`<dl data-testid="playground-result">
      <dt>model</dt><dd>${outcome.model} from ${outcome.source} on ${outcome.backend}</dd>
      <dt>load</dt><dd data-testid="playground-load-ms">${outcome.loadMs.toFixed(0)} ms</dd>
      <dt>run</dt><dd data-testid="playground-run-ms">${outcome.runMs.toFixed(1)} ms</dd>
      <dt>result</dt><dd data-testid="playground-output">${outcome.result}</dd>
    </dl>`
  }
  </section>`
}
