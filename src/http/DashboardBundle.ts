/**
 * The browser bundles a node serves under /ui, built by esbuild for the browser (ESM, no Node
 * built-ins): the dashboard (src/ui/Main.ts and its packages: preact, htm, uPlot) as `app.js` and
 * `app.css`, and the browser SDK (src/browser) as `sdk.js` with its two module workers,
 * `sdk-lora-worker.js` (LoRA training) and `sdk-inference-worker.js`, and the dashboard's service worker
 * `sw.js` (src/ui/offline: the page works offline after a first visit). `npm run build` writes them to
 * dist/ui; a node running from a checkout builds them in memory from the sources instead.
 */
import * as fs from "node:fs"
import * as path from "node:path"

/** The files of the bundle by name (`app.js`, `app.css`, `sdk.js` and its workers). */
export interface DashboardBundle {
  readonly files: ReadonlyMap<string, Uint8Array>
}

/** Every file a bundle has, as the node serves them under /ui. */
export const BUNDLE_FILES = [
  "app.js",
  "app.css",
  "sdk.js",
  "sdk-lora-worker.js",
  "sdk-inference-worker.js",
  "sw.js"
] as const

/**
 * esbuild's settings for the bundle of the sources under `uiDir` (and the SDK's, in the `browser`
 * folder beside it), written to `outDir`.
 */
export const dashboardBuildOptions = (uiDir: string, outDir: string) => ({
  entryPoints: {
    app: path.join(uiDir, "Main.ts"),
    sdk: path.join(uiDir, "..", "browser", "index.ts"),
    "sdk-lora-worker": path.join(uiDir, "..", "browser", "LoraWorker.ts"),
    "sdk-inference-worker": path.join(uiDir, "..", "browser", "InferenceWorker.ts"),
    // It imports and exports nothing, so the ESM build is a classic script too, as service workers load.
    sw: path.join(uiDir, "offline", "OfflineWorker.ts")
  },
  outdir: outDir,
  bundle: true,
  format: "esm" as const,
  platform: "browser" as const,
  target: ["chrome110", "firefox110", "safari16"],
  minify: true,
  legalComments: "none" as const,
  logLevel: "silent" as const
})

/** Bundles the sources under `uiDir` in memory (esbuild is a build-time dependency, loaded only here). */
export const buildDashboard = async (uiDir: string): Promise<DashboardBundle> => {
  const esbuild = await import("esbuild")
  const result = await esbuild.build({ ...dashboardBuildOptions(uiDir, path.join(uiDir, "out")), write: false })
  const files = new Map<string, Uint8Array>()
  for (const name of BUNDLE_FILES) {
    const file = result.outputFiles.find((candidate) => path.basename(candidate.path) === name)
    if (file === undefined) throw new Error(`the dashboard bundle has no ${name}`)
    files.set(name, file.contents)
  }
  return { files }
}

/** Writes the bundle to `outDir`, as `npm run build` does. */
export const writeDashboard = async (uiDir: string, outDir: string): Promise<void> => {
  const bundle = await buildDashboard(uiDir)
  fs.mkdirSync(outDir, { recursive: true })
  for (const [name, contents] of bundle.files) fs.writeFileSync(path.join(outDir, name), contents)
}

/** The bundle as built into dist/ui, or undefined when it was not (or only in part). */
export const readDashboard = (outDir: string): DashboardBundle | undefined => {
  const files = new Map<string, Uint8Array>()
  for (const name of BUNDLE_FILES) {
    const file = path.join(outDir, name)
    if (!fs.existsSync(file)) return undefined
    files.set(name, fs.readFileSync(file))
  }
  return { files }
}
