/**
 * The one error a tokenizer raises: a tokenizer.json it cannot read, or a component type it does not
 * implement, named so the user knows which part of the file to look at.
 */
import { Data } from "effect"

export class TokenizerError extends Data.TaggedError("TokenizerError")<{
  readonly reason: string
  /** The file at fault when one was read; `tokenizer.json` otherwise. */
  readonly file?: string | undefined
}> {
  override get message() {
    return `${this.file ?? "tokenizer.json"}: ${this.reason}`
  }
}

export const fail = (reason: string): never => {
  throw new TokenizerError({ reason })
}

export const unsupported = (component: string, type: unknown): never =>
  fail(`unsupported ${component} type ${JSON.stringify(type)}`)

/** A JSON object, or an error naming where one was expected. */
export const objectAt = (value: unknown, where: string): Record<string, unknown> => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return fail(`${where} is not an object`)
  return value as Record<string, unknown>
}

export const stringOr = (value: unknown, fallback: string): string => (typeof value === "string" ? value : fallback)
export const booleanOr = (value: unknown, fallback: boolean): boolean => (typeof value === "boolean" ? value : fallback)
export const numberOr = (value: unknown, fallback: number): number => (typeof value === "number" ? value : fallback)
