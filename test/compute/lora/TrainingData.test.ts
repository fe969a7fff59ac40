import { describe, expect, it } from "vitest"
import { labelledLines } from "../../../src/compute/lora/train/TrainingData.js"

describe("a classifier's training file", () => {
  it("reads {text, label} lines, skipping blank ones", () => {
    expect(
      labelledLines("{\"text\":\"spam here\",\"label\":\"spam\"}\n\n{\"text\":\"hello\",\"label\":0}\n", "train.jsonl")
    ).toEqual([
      { text: "spam here", label: "spam" },
      { text: "hello", label: 0 }
    ])
  })

  it("refuses a bad line in one message naming the file, the line and what is wrong", () => {
    const refusal = (content: string) => {
      try {
        labelledLines(content, "train.jsonl")
      } catch (error) {
        return error instanceof Error ? error.message : String(error)
      }
      return "accepted"
    }
    expect(refusal("{\"text\":\"a\",\"label\":1}\n{not json")).toBe(
      "train.jsonl:2: not JSON (each line is {\"text\": ..., \"label\": ...})"
    )
    expect(refusal("{\"label\":1}")).toBe("train.jsonl:1: needs a \"text\" string")
    expect(refusal("5")).toBe("train.jsonl:1: needs a \"text\" string")
    for (const label of ["\"\"", "-1", "1.5", "null"]) {
      expect(refusal(`{"text":"a","label":${label}}`)).toBe(
        "train.jsonl:1: needs a \"label\" (a non-empty string or a whole number 0 or more)"
      )
    }
  })
})
