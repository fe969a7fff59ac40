/**
 * Chat prompts: the `chat_template` of tokenizer_config.json rendered by @huggingface/jinja (the Jinja
 * of transformers.js, with HF's trim_blocks + lstrip_blocks), or a plain default template when the
 * model has none.
 */
import { Template } from "@huggingface/jinja"

export interface ChatMessage {
  readonly role: string
  readonly content: string
}

export interface ChatTemplateContext {
  readonly bos_token?: string | undefined
  readonly eos_token?: string | undefined
  readonly add_generation_prompt?: boolean | undefined
}

/** A chat_template that does not parse, or that failed while rendering (raise_exception included): one line. */
export class ChatTemplateError extends Error {
  override readonly name = "ChatTemplateError"
}

const oneLine = (cause: unknown) =>
  (cause instanceof Error ? cause.message : String(cause)).replace(/\s*\n\s*/g, " ").trim()

/** `<|role|>\ncontent\n` per message, then the assistant's prefix. */
export const defaultChatPrompt = (messages: ReadonlyArray<ChatMessage>, addGenerationPrompt = true) =>
  messages.map((message) => `<|${message.role}|>\n${message.content}\n`).join("") +
  (addGenerationPrompt ? "<|assistant|>\n" : "")

export interface CompiledChatTemplate {
  /** Throws ChatTemplateError. */
  readonly render: (messages: ReadonlyArray<ChatMessage>, context: ChatTemplateContext) => string
}

/**
 * Parses a chat_template once. One that does not parse still compiles, to a template whose every
 * render throws why: the model loads and generates, and only chat says what is wrong with it.
 */
export const compileChatTemplate = (source: string): CompiledChatTemplate => {
  let template: Template
  try {
    template = new Template(source)
  } catch (cause) {
    const problem = new ChatTemplateError(`chat_template does not parse: ${oneLine(cause)}`)
    return {
      render: () => {
        throw problem
      }
    }
  }
  return {
    render: (messages, context) => {
      try {
        return template.render({
          messages,
          bos_token: context.bos_token ?? "",
          eos_token: context.eos_token ?? "",
          add_generation_prompt: context.add_generation_prompt ?? true
        })
      } catch (cause) {
        throw new ChatTemplateError(`chat_template: ${oneLine(cause)}`)
      }
    }
  }
}

/** The chat_template string of a tokenizer_config.json (the default one when it lists several). */
export const chatTemplateOf = (config: Readonly<Record<string, unknown>>): string | undefined => {
  const template = config.chat_template
  if (typeof template === "string") return template
  if (Array.isArray(template)) {
    const named = template.find((entry) => (entry as { name?: unknown }).name === "default") ?? template[0]
    const text = (named as { template?: unknown } | undefined)?.template
    return typeof text === "string" ? text : undefined
  }
  return undefined
}

/** The prompt for `messages`: the model's template when it has one (throwing ChatTemplateError), else the default one. */
export const renderChatPrompt = (
  template: CompiledChatTemplate | undefined,
  messages: ReadonlyArray<ChatMessage>,
  context: ChatTemplateContext
) =>
  template === undefined
    ? defaultChatPrompt(messages, context.add_generation_prompt ?? true)
    : template.render(messages, context)
