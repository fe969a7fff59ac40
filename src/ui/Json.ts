/**
 * Reading the node's JSON in the page without trusting its shape: each accessor answers a value of
 * the type asked for, or an empty one, so a missing or renamed field shows as blank, never as a crash.
 */
export type Json = unknown

export const record = (value: Json): Readonly<Record<string, Json>> =>
  typeof value === "object" && value !== null && !Array.isArray(value) ? Object.fromEntries(Object.entries(value)) : {}

export const list = (value: Json): ReadonlyArray<Json> => (Array.isArray(value) ? value : [])

export const text = (value: Json): string =>
  typeof value === "string"
    ? value
    : typeof value === "number" || typeof value === "bigint" || typeof value === "boolean"
    ? String(value)
    : value === null || value === undefined
    ? ""
    : JSON.stringify(value)

export const num = (value: Json): number =>
  typeof value === "number" ? value : typeof value === "string" && value.trim() !== "" ? Number(value) : Number.NaN

export const at = (value: Json, ...path: ReadonlyArray<string>): Json =>
  path.reduce<Json>((current, key) => record(current)[key], value)

/** A hash or key cut to its first characters, for tables (the full value stays in the title). */
export const short = (value: Json, length = 12): string => {
  const full = text(value)
  return full.length > length + 1 ? `${full.slice(0, length)}…` : full
}

/** Bytes as kB / MB, as the manifests print sizes. */
export const bytes = (value: Json): string => {
  const size = num(value)
  if (!Number.isFinite(size)) return ""
  const units = ["B", "kB", "MB", "GB"]
  let scaled = size
  let unit = 0
  while (scaled >= 1000 && unit < units.length - 1) {
    scaled /= 1000
    unit++
  }
  return `${unit === 0 ? scaled : scaled.toFixed(1)} ${units[unit]}`
}
