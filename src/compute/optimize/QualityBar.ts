/**
 * The quality bar an optimized model must meet: bounds on figures of its validation report, each read
 * in the figure's own direction (a minimum for cosine or accuracy, a maximum for errors and perplexity).
 */

/**
 * Figures where smaller is better. Every other figure (cosine, top1, a task metric such as character
 * accuracy) is better when larger. `baseline<Figure>` and `<figure>Delta` go the way `<figure>` goes.
 */
const smallerIsBetter: ReadonlySet<string> = new Set([
  "maxError",
  "perplexity",
  "sizeRatio",
  "optimizedBytes",
  "latencyMs",
  "latencyRatio",
  "quantizationSeconds"
])

const uncapitalize = (text: string) => text.charAt(0).toLowerCase() + text.slice(1)

const isSmallerBetter = (figure: string): boolean => {
  const base = uncapitalize(figure.replace(/^baseline(?=[A-Z])/, "")).replace(/(?<=.)Delta$/, "")
  return smallerIsBetter.has(base)
}

export interface Bound {
  readonly figure: string
  readonly kind: "min" | "max"
}

/**
 * What a bar entry bounds. A key that names a reported figure bounds it in that figure's direction
 * (`cosine: 0.99` is a minimum, `maxError: 0.1` and `perplexityDelta: 0.5` are maxima); otherwise
 * `min<Figure>` / `max<Figure>` bound `<figure>` explicitly (`maxPerplexityDelta: 0.5`,
 * `minCharacterAccuracy: 0.9`), which is also how a larger-is-better default is turned around.
 */
export const boundOf = (key: string, report: Readonly<Record<string, number>>): Bound | undefined => {
  if (report[key] !== undefined) return { figure: key, kind: isSmallerBetter(key) ? "max" : "min" }
  const explicit = /^(min|max)([A-Z].*)$/.exec(key)
  if (explicit === null) return undefined
  const figure = uncapitalize(explicit[2]!)
  return report[figure] === undefined ? undefined : { figure, kind: explicit[1] as Bound["kind"] }
}

/** Each missed bound as `<figure> <value> <|> <limit>`; empty when the report meets the bar. */
export const qualityBarMisses = (
  report: Readonly<Record<string, number>>,
  bar: Readonly<Record<string, number>>
): Array<string> =>
  Object.entries(bar).flatMap(([key, limit]) => {
    const bound = boundOf(key, report)
    if (bound === undefined) return [`${key}: not measured`]
    const value = report[bound.figure]!
    const ok = bound.kind === "max" ? value <= limit : value >= limit
    return ok ? [] : [`${bound.figure} ${value.toFixed(4)} ${bound.kind === "max" ? ">" : "<"} ${limit}`]
  })
