/**
 * Issue 16's acceptance line at full size (two minutes: `npm run test:slow`): "Adapter on an INT4 base:
 * held-out figure within 2% of the same adapter on the FP32 base." tiny-lm adapted to 2002 mailing-list
 * mail with the issue 5 task's config (rank 4, 39 steps), held-out perplexity by ONNX Runtime.
 *
 * The figure compared is held-out perplexity itself, two-sided: what a user running the adapter on the
 * 4-bit file sees against running it on FP32. The bases differ by more than 2% on this text (4-bit
 * rounding happens to help tiny-lm on mail), so a ratio of improvements would mostly measure the bases.
 */
import { describe, expect, it } from "vitest"
import { int4Adaptation } from "../support/LoraTasks.js"

describe("LoRA on a 4-bit base", () => {
  it("reaches a held-out perplexity within 2% of the same adapter on FP32, trained on either base", async () => {
    const result = await int4Adaptation()
    const { perplexity } = result
    const figure = (value: number) => value.toFixed(2)
    console.log(
      `INT4 LoRA, ${result.trainWindows} x ${result.windowLength} tokens, ${result.steps} steps: held-out perplexity ` +
        `FP32 base ${figure(perplexity.fp32Base)}, INT4 base ${figure(perplexity.int4Base)}; ` +
        `FP32-trained adapter on FP32 ${figure(perplexity.fp32Adapter)}, on INT4 ${
          figure(perplexity.fp32AdapterOnInt4)
        }; ` +
        `INT4-trained (QLoRA) on INT4 ${figure(perplexity.int4Adapter)}, on FP32 ${
          figure(perplexity.int4AdapterOnFp32)
        }; ` +
        `training ${(result.trainMs.fp32 / 1000).toFixed(0)} s (FP32), ${
          (result.trainMs.int4 / 1000).toFixed(0)
        } s (INT4)`
    )
    expect(result.trainWindows).toBe(100)
    expect(result.heldOutWindows).toBe(40)
    // Measured 370.9 -> 143.9 (FP32) and 364.5 -> 143.7 (QLoRA): both adapters learned the mail.
    expect(perplexity.fp32Adapter).toBeLessThan(0.5 * perplexity.fp32Base)
    expect(perplexity.int4Adapter).toBeLessThan(0.5 * perplexity.int4Base)
    expect(Math.abs(perplexity.fp32AdapterOnInt4 / perplexity.fp32Adapter - 1)).toBeLessThan(0.02)
    expect(Math.abs(perplexity.int4Adapter / perplexity.fp32Adapter - 1)).toBeLessThan(0.02)
    expect(Math.abs(perplexity.int4AdapterOnFp32 / perplexity.fp32Adapter - 1)).toBeLessThan(0.02)
  }, 900_000)
})
