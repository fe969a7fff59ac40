/**
 * English text lines for the OCR quality harness: words, numbers and punctuation drawn by a seeded
 * generator, so every run (and every machine) evaluates the same lines.
 */

const words = [
  "about",
  "above",
  "across",
  "after",
  "again",
  "air",
  "almost",
  "along",
  "always",
  "amount",
  "answer",
  "apple",
  "area",
  "around",
  "autumn",
  "away",
  "back",
  "basket",
  "because",
  "before",
  "begin",
  "below",
  "between",
  "bird",
  "black",
  "blue",
  "boat",
  "body",
  "book",
  "bottle",
  "bread",
  "bridge",
  "bright",
  "brown",
  "build",
  "busy",
  "cabin",
  "candle",
  "carry",
  "castle",
  "center",
  "chair",
  "change",
  "circle",
  "city",
  "clear",
  "clock",
  "cloud",
  "coast",
  "cold",
  "color",
  "copper",
  "corner",
  "country",
  "course",
  "cover",
  "cross",
  "dance",
  "dark",
  "daughter",
  "desert",
  "direct",
  "distant",
  "doctor",
  "double",
  "dream",
  "early",
  "earth",
  "east",
  "engine",
  "evening",
  "example",
  "face",
  "family",
  "farm",
  "fast",
  "field",
  "figure",
  "finger",
  "fire",
  "fish",
  "flower",
  "follow",
  "forest",
  "friend",
  "front",
  "garden",
  "gentle",
  "glass",
  "gold",
  "green",
  "ground",
  "group",
  "half",
  "harbor",
  "heavy",
  "high",
  "hill",
  "horse",
  "house",
  "hundred",
  "island",
  "journey",
  "jump",
  "keep",
  "kettle",
  "king",
  "kitchen",
  "knife",
  "ladder",
  "lake",
  "language",
  "large",
  "laugh",
  "letter",
  "light",
  "little",
  "long",
  "machine",
  "market",
  "measure",
  "middle",
  "minute",
  "morning",
  "mountain",
  "music",
  "narrow",
  "near",
  "night",
  "north",
  "number",
  "ocean",
  "office",
  "open",
  "orange",
  "paper",
  "people",
  "pepper",
  "picture",
  "piece",
  "plain",
  "planet",
  "pocket",
  "quick",
  "quiet",
  "quite",
  "rabbit",
  "rain",
  "record",
  "river",
  "road",
  "rock",
  "round",
  "sail",
  "salt",
  "school",
  "season",
  "second",
  "seven",
  "shadow",
  "ship",
  "silver",
  "simple",
  "sister",
  "small",
  "snow",
  "south",
  "square",
  "stone",
  "storm",
  "story",
  "street",
  "strong",
  "summer",
  "table",
  "thick",
  "thought",
  "thunder",
  "ticket",
  "tower",
  "travel",
  "tree",
  "valley",
  "village",
  "voice",
  "wagon",
  "water",
  "weather",
  "west",
  "wheel",
  "white",
  "window",
  "winter",
  "wonder",
  "world",
  "yellow",
  "young",
  "zebra",
  "zero",
  "zone"
] as const

const names = [
  "Alice",
  "Boston",
  "Clara",
  "Dublin",
  "Edgar",
  "Fiona",
  "Granada",
  "Hector",
  "Irene",
  "Jakarta",
  "Kevin",
  "Lisbon",
  "Monday",
  "Nairobi",
  "Oscar",
  "Paris",
  "Quentin",
  "Rome",
  "Sunday",
  "Tokyo",
  "Ursula",
  "Vienna",
  "Walter",
  "Xavier",
  "Yvonne",
  "Zurich",
  "March",
  "October",
  "Friday",
  "Oslo"
] as const

const contractions = ["don't", "it's", "we'll", "isn't", "they're", "can't", "I'm", "you've"] as const

const terminators = [".", ".", ".", "!", "?", ";", ":"] as const

/** A small deterministic generator (mulberry32): uniform floats in [0, 1) from a 32-bit seed. */
export const seededRandom = (seed: number): () => number => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let mixed = Math.imul(state ^ (state >>> 15), state | 1)
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61)
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4294967296
  }
}

const pick = <A>(random: () => number, items: ReadonlyArray<A>): A => items[Math.floor(random() * items.length)]!

const integer = (random: () => number, below: number) => Math.floor(random() * below)

const capitalize = (word: string) => word.charAt(0).toUpperCase() + word.slice(1)

const numberToken = (random: () => number): string => {
  switch (integer(random, 7)) {
    case 0:
      return String(1 + integer(random, 99))
    case 1:
      return String(1900 + integer(random, 130))
    case 2:
      return `${integer(random, 24)}:${String(integer(random, 60)).padStart(2, "0")}`
    case 3:
      return `${1 + integer(random, 99)}%`
    case 4:
      return `$${1 + integer(random, 500)}.${String(integer(random, 100)).padStart(2, "0")}`
    case 5:
      return `${integer(random, 10)}.${1 + integer(random, 999)}`
    default:
      return `No. ${1 + integer(random, 9999)}`
  }
}

const wordToken = (random: () => number): string => {
  const roll = random()
  if (roll < 0.12) return pick(random, names)
  if (roll < 0.18) return pick(random, contractions)
  if (roll < 0.22) return pick(random, words).toUpperCase()
  if (roll < 0.3) return capitalize(pick(random, words))
  if (roll < 0.35) return `${pick(random, words)}-${pick(random, words)}`
  return pick(random, words)
}

/** One line of 4 to 7 tokens: a capitalized start, words, numbers, inner and final punctuation. */
export const generateTextLine = (random: () => number): string => {
  const count = 4 + integer(random, 4)
  const tokens: Array<string> = []
  for (let i = 0; i < count; i++) {
    let token = random() < 0.2 ? numberToken(random) : wordToken(random)
    if (i === 0) token = capitalize(token)
    const decoration = random()
    if (i < count - 1 && decoration < 0.15) token += ","
    else if (i > 0 && i < count - 1 && decoration < 0.2) token = `(${token})`
    else if (i > 0 && i < count - 1 && decoration < 0.24) token = `"${token}"`
    tokens.push(token)
  }
  return tokens.join(" ") + pick(random, terminators)
}

export const generateTextLines = (seed: number, count: number): Array<string> => {
  const random = seededRandom(seed)
  return Array.from({ length: count }, () => generateTextLine(random))
}

/** The harness's evaluation set: 100 lines from seed 20240607. */
export const evaluationTextLines: ReadonlyArray<string> = generateTextLines(20240607, 100)
