// `npm run build`'s CLI step: both CLIs and their worker threads bundled into dist/bin (see
// src/cli/Bundle.ts, compiled just before), which bin/edge-net.js and bin/edge-net-models.js run.
import * as fs from "node:fs"
import { bundleCli } from "../dist/cli/Bundle.js"

fs.rmSync("dist/bin", { recursive: true, force: true })
await bundleCli("src", "dist/bin")
console.log("CLI bundle written to dist/bin")
