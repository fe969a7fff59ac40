/**
 * A tokenizer read from disk: tokenizer.json with the tokenizer_config.json and config.json beside it.
 * Kept apart from Tokenizer.ts, which touches no Node built-in, so the browser SDK can bundle that one.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { JsonTextError } from "../../domain/JsonText.js"
import { decodeConfigText, Tokenizer, type TokenizerConfig } from "./Tokenizer.js"
import { TokenizerError } from "./TokenizerError.js"

/** Reads tokenizer.json, with tokenizer_config.json and config.json from the same folder when present. */
export const tokenizerFromFile = (file: string): Effect.Effect<Tokenizer, TokenizerError> => {
  // Every error names the file at fault: tokenizer.json itself or the sibling config it came from.
  const read = <A>(name: string, decode: (text: string) => A): A => {
    try {
      return decode(fs.readFileSync(name, "utf8"))
    } catch (error) {
      throw new TokenizerError({
        file: name,
        reason: error instanceof TokenizerError
          ? error.reason
          : error instanceof JsonTextError
          ? error.problem
          : `cannot read it: ${error instanceof Error ? error.message : String(error)}`
      })
    }
  }
  return Effect.try({
    try: () => {
      const folder = path.dirname(file)
      const optional = (name: string): TokenizerConfig => {
        const sibling = path.join(folder, name)
        return fs.existsSync(sibling) ? read(sibling, (text) => decodeConfigText(text, sibling)) : {}
      }
      const config = optional("tokenizer_config.json")
      const modelConfig = optional("config.json")
      return read(file, (text) => Tokenizer.fromJson(text, config, modelConfig))
    },
    catch: (error) =>
      error instanceof TokenizerError
        ? error
        : new TokenizerError({ file, reason: error instanceof Error ? error.message : String(error) })
  })
}
