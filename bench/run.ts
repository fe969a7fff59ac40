/**
 * `npm run bench [-- suite...]`: runs the named benchmark suites (all when none is named). Each line
 * prints our figure, a baseline measured in the same run on the same machine, and their ratio.
 */
const suites: Record<string, () => Promise<void>> = {
  journal: async () => (await import("./journal.js")).run(),
  pull: async () => (await import("./pull.js")).run(),
  optimize: async () => (await import("./optimize.js")).run(),
  embed: async () => (await import("./embed.js")).run(),
  lora: async () => (await import("./lora.js")).run(),
  learning: async () => (await import("./learning.js")).run(),
  market: async () => (await import("./market.js")).run(),
  network: async () => (await import("./network.js")).run(),
  serve: async () => (await import("./serve.js")).run(),
  cli: async () => (await import("./cli.js")).run(),
  browser: async () => (await import("./browser.js")).run()
}

const wanted = process.argv.slice(2).filter((arg) => !arg.startsWith("-"))
const unknown = wanted.filter((name) => !(name in suites))
if (unknown.length > 0) {
  console.error(`unknown benchmark suite ${unknown.join(", ")}; known: ${Object.keys(suites).join(", ")}`)
  process.exit(2)
}
for (const name of wanted.length > 0 ? wanted : Object.keys(suites)) {
  console.log(`\n## ${name}`)
  await suites[name]!()
}
