/** A uPlot time series as a preact component: created once on mount, fed new data on every render. */
import { html } from "htm/preact"
import { useEffect, useRef } from "preact/hooks"
import uPlot from "uplot"

export interface ChartSeries {
  readonly label: string
  readonly values: ReadonlyArray<number>
  readonly color: string
  /** On the right-hand axis, when its values are of another magnitude than the rest (a price beside reserves). */
  readonly right?: boolean
}

export interface ChartProps {
  readonly title: string
  /** Seconds since the epoch, ascending. */
  readonly times: ReadonlyArray<number>
  readonly series: ReadonlyArray<ChartSeries>
  readonly testId: string
}

export const Chart = ({ series, testId, times, title }: ChartProps) => {
  const container = useRef<HTMLDivElement>(null)
  const plot = useRef<uPlot | null>(null)
  const data = (): uPlot.AlignedData => [Array.from(times), ...series.map((line) => Array.from(line.values))]

  useEffect(() => {
    const element = container.current
    if (element === null) return
    plot.current = new uPlot(
      {
        width: Math.max(320, element.clientWidth),
        height: 180,
        title,
        series: [
          {},
          ...series.map((line) => ({
            label: line.label,
            stroke: line.color,
            width: 2,
            scale: line.right ? "right" : "y"
          }))
        ],
        axes: [
          { stroke: "#9aa4b2" },
          { stroke: "#9aa4b2", scale: "y" },
          ...(series.some((line) => line.right)
            ? [{ stroke: "#9aa4b2", scale: "right", side: 1, grid: { show: false } }]
            : [])
        ],
        legend: { show: true }
      },
      data(),
      element
    )
    const resize = () => plot.current?.setSize({ width: Math.max(320, element.clientWidth), height: 180 })
    window.addEventListener("resize", resize)
    return () => {
      window.removeEventListener("resize", resize)
      plot.current?.destroy()
      plot.current = null
    }
  }, [])

  useEffect(() => {
    plot.current?.setData(data())
  }, [times, series])

  return html`<div class="chart" data-testid=${testId} ref=${container}></div>`
}
