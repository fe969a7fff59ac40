/**
 * The dashboard's browser bundle: src/ui/Main.ts and its packages (preact, htm, uPlot) bundled by
 * esbuild for the browser (ESM, no Node built-ins), into `app.js` and `app.css`. `npm run build`
 * writes it to dist/ui; a node running from a checkout builds it in memory from the sources instead.
 */
import * as fs from "node:fs"
import * as path from "node:path"

export interface DashboardBundle {
  readonly js: Uint8Array
  readonly css: Uint8Array
}

/** esbuild's settings for the bundle of the sources under `uiDir`, written to `outDir` (app.js, app.css). */
export const dashboardBuildOptions = (uiDir: string, outDir: string) => ({
  entryPoints: { app: path.join(uiDir, "Main.ts") },
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
  const output = (extension: string) => {
    const file = result.outputFiles.find((candidate) => candidate.path.endsWith(extension))
    if (file === undefined) throw new Error(`the dashboard bundle has no ${extension} output`)
    return file.contents
  }
  return { js: output(".js"), css: output(".css") }
}

/** Writes the bundle to `outDir` (app.js, app.css), as `npm run build` does. */
export const writeDashboard = async (uiDir: string, outDir: string): Promise<void> => {
  const bundle = await buildDashboard(uiDir)
  fs.mkdirSync(outDir, { recursive: true })
  fs.writeFileSync(path.join(outDir, "app.js"), bundle.js)
  fs.writeFileSync(path.join(outDir, "app.css"), bundle.css)
}

/** The bundle as built into dist/ui, or undefined when it was not. */
export const readDashboard = (outDir: string): DashboardBundle | undefined => {
  const js = path.join(outDir, "app.js")
  const css = path.join(outDir, "app.css")
  if (!fs.existsSync(js) || !fs.existsSync(css)) return undefined
  return { js: fs.readFileSync(js), css: fs.readFileSync(css) }
}
