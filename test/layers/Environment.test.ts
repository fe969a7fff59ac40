/**
 * The node's environment variables as the config reads them: here EDGE_NET_FIRST_START_MODELS, which
 * is on, off, or the catalog ids to publish, and refuses anything else in one line.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either } from "effect"
import { environmentConfig } from "../../src/layers/Environment.js"

const read = (value: string | undefined) =>
  Effect.runSync(
    Effect.either(
      Effect.withConfigProvider(
        environmentConfig,
        ConfigProvider.fromMap(new Map(value === undefined ? [] : [["EDGE_NET_FIRST_START_MODELS", value]]))
      )
    )
  )

describe("EDGE_NET_FIRST_START_MODELS", () => {
  it("is on by default, off, or a list of catalog ids", () => {
    const settings = (value: string | undefined) => {
      const result = read(value)
      if (Either.isLeft(result)) throw new Error(String(result.left))
      return { on: result.right.firstStartModels, ids: result.right.firstStartIds }
    }
    expect(settings(undefined)).toEqual({ on: true, ids: undefined })
    expect(settings("off")).toEqual({ on: false, ids: undefined })
    expect(settings("tiny-encoder, tiny-lm-int8")).toEqual({ on: true, ids: ["tiny-encoder", "tiny-lm-int8"] })
  })

  it("refuses anything else in one line", () => {
    const result = read("yes please")
    expect(Either.isLeft(result)).toBe(true)
    if (Either.isLeft(result)) {
      expect(String(result.left)).toContain("EDGE_NET_FIRST_START_MODELS")
      expect(String(result.left)).toContain(`is on, off or a comma-separated list of model ids, not "yes please"`)
    }
  })
})
