/**
 * Chat prompts: the `chat_template` of tokenizer_config.json rendered by our Jinja subset, or a plain
 * default template when there is none or it needs more Jinja than the subset has.
 */
import { parseTemplate, renderTemplate, type Template, TemplateError } from "./Jinja.js"

export interface ChatMessage {
  readonly role: string
  readonly content: string
}

export interface ChatTemplateContext {
  readonly bos_token?: string | undefined
  readonly eos_token?: string | undefined
  readonly add_generation_prompt?: boolean | undefined
}

/** `<|role|>\ncontent\n` per message, then the assistant's prefix. */
export const defaultChatPrompt = (messages: ReadonlyArray<ChatMessage>, addGenerationPrompt = true) =>
  messages.map((message) => `<|${message.role}|>\n${message.content}\n`).join("") + (addGenerationPrompt ? "<|assistant|>\n" : "")

export interface CompiledChatTemplate {
  readonly render: (messages: ReadonlyArray<ChatMessage>, context: ChatTemplateContext) => string
}

/** Compiles a chat_template; undefined when it uses Jinja this subset does not implement. */
export const compileChatTemplate = (template: string): CompiledChatTemplate | undefined => {
  let parsed: Template
  try {
    parsed = parseTemplate(template)
  } catch (error) {
    if (error instanceof TemplateError) return undefined
    throw error
  }
  return {
    render: (messages, context) => {
      return renderTemplate(parsed, {
        messages,
        bos_token: context.bos_token ?? "",
        eos_token: context.eos_token ?? "",
        add_generation_prompt: context.add_generation_prompt ?? true,
        raise_exception: (message: unknown) => {
          throw new Error(`chat template: ${String(message)}`)
        }
      })
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

/** The prompt for `messages`: the compiled template, or the default one when there is none or it needs more Jinja. */
export const renderChatPrompt = (template: CompiledChatTemplate | undefined, messages: ReadonlyArray<ChatMessage>, context: ChatTemplateContext) => {
  if (template !== undefined) {
    try {
      return template.render(messages, context)
    } catch (error) {
      if (!(error instanceof TemplateError)) throw error
    }
  }
  return defaultChatPrompt(messages, context.add_generation_prompt ?? true)
}
