/**
 * The dashboard's entry: its styles (uPlot's and ours), the page mounted on #app, and the service
 * worker that keeps the page and the playground's runtime for offline use (src/ui/offline).
 */
import "uplot/dist/uPlot.min.css"
import "./Dashboard.css"
import { html } from "htm/preact"
import { render } from "preact"
import { App } from "./App.js"
import { registerOfflineWorker } from "./Offline.js"

const root = document.getElementById("app")
if (root !== null) {
  root.textContent = ""
  render(html`<${App} />`, root)
}

registerOfflineWorker()
