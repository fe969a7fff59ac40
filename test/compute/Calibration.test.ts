import { describe, expect, it } from "@effect/vitest"
import { parseCalibrationJsonl, parseNpy, writeNpy } from "../../src/compute/Calibration.js"

const NUMPY_INT64_3X4 =
  "k05VTVBZAQB2AHsnZGVzY3InOiAnPGk4JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDMsIDQpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg" +
  "ICAgICAgICAgICAgICAgICAgIAoAAAAAAAAAAAEAAAAAAAAAAgAAAAAAAAADAAAAAAAAAAQAAAAAAAAABQAAAAAAAAAGAAAAAAAAAAcAAAAAAAAACAAAAAAAAAAJAAAAAAAAAAoAAAAAAAAACwAAAAAAAAA="

describe("calibration data", () => {
  it("reads the seed's JSONL and names the line of a bad sample", () => {
    expect(parseCalibrationJsonl("{\"text\": \"The quick brown fox.\"}\n\n{\"text\": \"Machine learning.\"}\n"))
      .toEqual(["The quick brown fox.", "Machine learning."])
    expect(() => parseCalibrationJsonl("{\"text\": \"ok\"}\n{\"txt\": 1}", "cal.jsonl")).toThrow(
      "cal.jsonl:2: expected {\"text\": \"...\"}"
    )
    expect(() => parseCalibrationJsonl("{oops", "cal.jsonl")).toThrow("cal.jsonl:1: not JSON")
    expect(() => parseCalibrationJsonl("\n", "cal.jsonl")).toThrow("cal.jsonl: no samples")
  })

  it("round-trips .npy tensors and reads what NumPy writes", () => {
    const tensor = { dtype: "float32" as const, shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6.5) }
    const parsed = parseNpy(writeNpy(tensor))
    expect(parsed.shape).toEqual([2, 3])
    expect(Array.from(parsed.data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6.5])
    // np.save(f, np.arange(12, dtype=np.int64).reshape(3, 4)) with NumPy 1.24, byte for byte.
    const fromNumpy = parseNpy(new Uint8Array(Buffer.from(NUMPY_INT64_3X4, "base64")))
    expect(fromNumpy).toMatchObject({ dtype: "int64", shape: [3, 4] })
    expect((fromNumpy.data as BigInt64Array)[11]).toBe(11n)
    expect(() => parseNpy(Uint8Array.of(1, 2, 3), "x.npy")).toThrow("x.npy: not a .npy file")
  })
})
