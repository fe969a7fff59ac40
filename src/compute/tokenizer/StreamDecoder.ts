/**
 * Incremental decoding for streamed generation: each new id yields the text it adds, held back while it
 * ends in an incomplete UTF-8 sequence, so a multi-byte character is never split across pieces.
 */
import type { DecodeOptions, Tokenizer } from "./Tokenizer.js"

export class StreamDecoder {
  private readonly ids: Array<number> = []
  /** ids[prefixOffset, readOffset) were already emitted; they are decoded again as context for the next ones. */
  private prefixOffset = 0
  private readOffset = 0

  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly options: DecodeOptions = { skipSpecialTokens: true }
  ) {}

  /** The text `id` adds; empty while a character is still incomplete. */
  push(id: number): string {
    this.ids.push(id)
    const { before, after } = this.window()
    if (after.length <= before.length || after.endsWith("\uFFFD")) return ""
    this.prefixOffset = this.readOffset
    this.readOffset = this.ids.length
    return after.slice(before.length)
  }

  /** Whatever is still held back (an incomplete character decodes as U+FFFD here, as it would in full). */
  flush(): string {
    const { before, after } = this.window()
    this.prefixOffset = this.readOffset = this.ids.length
    return after.length > before.length ? after.slice(before.length) : ""
  }

  private window() {
    const before = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset), this.options)
    const after = this.tokenizer.decode(this.ids.slice(this.prefixOffset), this.options)
    return { before, after }
  }
}
