/** The learning benchmark's printing: percentages, met/MISSED, and right-aligned tables. */

export const percent = (value: number) => (100 * value).toFixed(1)
export const met = (ok: boolean) => (ok ? "met" : "MISSED")

export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>) => {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) => cells.map((cell, column) => cell.padStart(widths[column]!)).join("  ")
  console.log(line(header))
  for (const row of rows) console.log(line(row))
}
