/** Timing and the one-line report format shared by every benchmark. */

export const time = async (work: () => unknown | Promise<unknown>): Promise<number> => {
  const start = process.hrtime.bigint()
  await work()
  return Number(process.hrtime.bigint() - start) / 1e9
}

/** Best of `runs`: the machine is shared and noisy, and the fastest run is the least disturbed. */
export const bestOf = async (runs: number, work: () => unknown | Promise<unknown>): Promise<number> => {
  let best = Number.POSITIVE_INFINITY
  for (let i = 0; i < runs; i++) best = Math.min(best, await time(work))
  return best
}

const format = (value: number) => (value >= 100 ? Math.round(value).toLocaleString("en-US") : value.toFixed(2))

export const report = (
  name: string,
  unit: string,
  ours: number,
  baseline: number,
  baselineName: string,
  target?: string
) => {
  const ratio = ours / baseline
  console.log(
    `${name.padEnd(44)} ours ${format(ours).padStart(11)} ${unit}   ${baselineName} ${
      format(baseline).padStart(11)
    } ${unit}   ratio ${ratio.toFixed(2)}x${target === undefined ? "" : `   (target ${target})`}`
  )
}
