/** An expected failure of a CLI command: printed as one line, exit code 1, no stack trace. */
import { Data } from "effect"

export class CliError extends Data.TaggedError("CliError")<{ readonly message: string }> {}
