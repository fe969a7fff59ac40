/**
 * A user's training file turned into samples: plain text for a causal LM (documents separated by blank
 * lines, cut into windows), or JSON lines `{"text": ..., "label": ...}` for a classifier. Every k-th
 * window or example is held out (k from the held-out fraction), so the before/after figure is measured
 * on text the adapter never trained on, spread over the whole file.
 */
import { Either, ParseResult, Schema } from "effect"
import type { Tokenizer } from "../../tokenizer/Tokenizer.js"
import type { CausalLmSample, ClassificationSample } from "./Objectives.js"
import { classificationSamples, languageModelWindows } from "./TextData.js"
import { TrainingError } from "./TrainingConfig.js"

export type TrainingTask = "causal-lm" | "classification"

export type TrainingData =
  | {
    readonly task: "causal-lm"
    readonly train: ReadonlyArray<CausalLmSample>
    readonly heldOut: ReadonlyArray<CausalLmSample>
  }
  | {
    readonly task: "classification"
    readonly train: ReadonlyArray<ClassificationSample>
    readonly heldOut: ReadonlyArray<ClassificationSample>
    /** Class names by index: the labels as written, integers in order or strings sorted. */
    readonly labels: ReadonlyArray<string>
  }

export interface TrainingDataOptions {
  /** Tokens per LM window (default 128). */
  readonly windowLength?: number
  /** Tokens a classification example is truncated to, special tokens included (default 64). */
  readonly maxTokens?: number
  /** Share of windows or examples held out, in (0, 0.5] (default 0.1). */
  readonly heldOutFraction?: number
  /** The token put between LM documents (the model's end-of-text). */
  readonly separator?: number | undefined
}

const fail = (reason: string): never => {
  throw new TrainingError(reason)
}

/** Splits items into train and held-out: every k-th item (k = round(1 / fraction)) is held out. */
export const holdOut = <T>(items: ReadonlyArray<T>, fraction: number): { train: Array<T>; heldOut: Array<T> } => {
  if (!(fraction > 0 && fraction <= 0.5)) fail(`the held-out fraction must be in (0, 0.5] (not ${fraction})`)
  const every = Math.max(2, Math.round(1 / fraction))
  const train: Array<T> = []
  const heldOut: Array<T> = []
  items.forEach((item, index) => (index % every === every - 1 ? heldOut : train).push(item))
  return { train, heldOut }
}

/** Documents of a text file: paragraphs separated by one or more blank lines. */
export const textDocuments = (text: string): Array<string> =>
  text.split(/\r?\n[ \t]*\r?\n/).map((document) => document.trim()).filter((document) => document.length > 0)

/** One line of a classifier's training file: the text and its class (a name, or an index 0 or more). */
const LabelledText = Schema.Struct({
  text: Schema.String,
  label: Schema.Union(Schema.NonEmptyString, Schema.NonNegativeInt)
})
type LabelledText = typeof LabelledText.Type
const decodeLabelledLine = Schema.decodeUnknownEither(Schema.parseJson(LabelledText))
const decodeJson = Schema.decodeUnknownEither(Schema.parseJson())

/** What was wrong with a line, named by the first field its decoding stopped at. */
const lineProblem = (line: string, error: ParseResult.ParseError): string => {
  const field = ParseResult.ArrayFormatter.formatErrorSync(error)[0]?.path[0]
  if (field === "text" || (field === undefined && Either.isRight(decodeJson(line)))) return "needs a \"text\" string"
  if (field === "label") return "needs a \"label\" (a non-empty string or a whole number 0 or more)"
  return "not JSON (each line is {\"text\": ..., \"label\": ...})"
}

/** JSON lines of `{"text", "label"}`; blank lines are skipped, anything else is refused with its line number. */
export const labelledLines = (content: string, file: string): Array<LabelledText> => {
  const items: Array<LabelledText> = []
  content.split(/\r?\n/).forEach((line, index) => {
    if (line.trim() === "") return
    const decoded = decodeLabelledLine(line)
    if (Either.isLeft(decoded)) return fail(`${file}:${index + 1}: ${lineProblem(line, decoded.left)}`)
    items.push(decoded.right)
  })
  return items
}

/** Class names by index: 0..max for whole-number labels, else the distinct strings sorted. */
const classNames = (items: ReadonlyArray<LabelledText>): Array<string> => {
  if (items.every((item) => typeof item.label === "number")) {
    const max = items.reduce((highest, item) => Math.max(highest, item.label as number), 0)
    return Array.from({ length: max + 1 }, (_, index) => String(index))
  }
  if (items.some((item) => typeof item.label === "number")) fail("labels mix numbers and strings: use one kind")
  return [...new Set(items.map((item) => item.label as string))].sort()
}

/** `causal-lm` for a text file, `classification` for JSON lines (`.jsonl` / `.ndjson`). */
export const taskForFile = (
  file: string
): TrainingTask => (/\.(jsonl|ndjson)$/i.test(file) ? "classification" : "causal-lm")

export const trainingData = (
  content: string,
  file: string,
  task: TrainingTask,
  tokenizer: Tokenizer,
  options: TrainingDataOptions = {}
): TrainingData => {
  const fraction = options.heldOutFraction ?? 0.1
  if (task === "causal-lm") {
    const windowLength = options.windowLength ?? 128
    if (!Number.isInteger(windowLength) || windowLength < 2) {
      fail(`the window must be a whole number of tokens, 2 or more (not ${windowLength})`)
    }
    const windows = languageModelWindows(tokenizer, textDocuments(content), windowLength, {
      separator: options.separator
    })
    if (windows.length < 2) {
      fail(
        `${file} makes ${windows.length} window(s) of ${windowLength} tokens: training and a held-out figure need 2 or more (give more text or a shorter --window)`
      )
    }
    return { task, ...holdOut(windows, fraction) }
  }
  const items = labelledLines(content, file)
  const labels = classNames(items)
  if (labels.length < 2) fail(`${file} has ${labels.length} class(es): a classifier needs 2 or more`)
  if (items.length < 4) fail(`${file} has ${items.length} example(s): training and a held-out figure need 4 or more`)
  const index = new Map(labels.map((label, position) => [label, position]))
  const samples = classificationSamples(
    tokenizer,
    items.map((item) => ({ text: item.text, label: index.get(String(item.label))! })),
    options.maxTokens ?? 64
  )
  return { task, labels, ...holdOut(samples, fraction) }
}

/**
 * Module paths picked by name the way PEFT's `target_modules` does: a module is chosen when its path is
 * a name given or ends with `.<name>`. Every name must choose at least one module.
 */
export const matchTargetModules = (available: ReadonlyArray<string>, names: ReadonlyArray<string>): Array<string> => {
  const chosen = new Set<string>()
  for (const name of names) {
    const matches = available.filter((module) => module === name || module.endsWith(`.${name}`))
    if (matches.length === 0) {
      fail(`no module of the model is or ends with "${name}" (such as ${available.slice(0, 3).join(", ")})`)
    }
    for (const module of matches) chosen.add(module)
  }
  return available.filter((module) => chosen.has(module))
}
