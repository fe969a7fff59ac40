/** What `bench -- embed` runs, shared with the process that measures each side's peak memory. */

const WORDS = [
  "whale",
  "ship",
  "sea",
  "captain",
  "harpoon",
  "storm",
  "sailor",
  "ocean",
  "white",
  "deck",
  "crew",
  "voyage",
  "wind",
  "night",
  "island"
]
export const EMBED_TEXTS = Array.from(
  { length: 512 },
  (_, i) => Array.from({ length: 4 + (i % 13) }, (_, j) => WORDS[(i * 7 + j * 3) % WORDS.length]).join(" ")
)

export const PROMPT = "The whale"
export const NEW_TOKENS = 96
