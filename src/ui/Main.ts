/** The dashboard's entry: its styles (uPlot's and ours) and the page mounted on #app. */
import "uplot/dist/uPlot.min.css"
import "./Dashboard.css"
import { html } from "htm/preact"
import { render } from "preact"
import { App } from "./App.js"

const root = document.getElementById("app")
if (root !== null) {
  root.textContent = ""
  render(html`<${App} />`, root)
}
