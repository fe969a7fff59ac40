import { spawnSync } from "node:child_process"
import { describe, expect, it } from "vitest"
import { torchBaselineRefusal } from "../../bench/support/TorchBlas.js"

/** tools/torch_blas.py's classification of loaded library paths (plain Python: no torch needed). */
const blasOf = (paths: ReadonlyArray<string>): string => {
  const script = `import json, sys\nsys.path.insert(0, "tools")\nfrom torch_blas import blas_of\n` +
    `print(blas_of(json.loads(sys.argv[1])))`
  const result = spawnSync("/usr/bin/python3", ["-c", script, JSON.stringify(paths)], { encoding: "utf8" })
  expect(result.status, result.stderr).toBe(0)
  return result.stdout.trim()
}

describe("PyTorch baselines name their BLAS", () => {
  it("tells Debian's reference BLAS from OpenBLAS by the library loaded", () => {
    expect(blasOf(["/usr/lib/x86_64-linux-gnu/blas/libblas.so.3"])).toBe("reference")
    expect(blasOf([
      "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3",
      "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblasp-r0.3.21.so"
    ])).toBe("openblas")
    expect(blasOf(["/usr/lib/x86_64-linux-gnu/blis-pthread/libblas.so.3"])).toBe("blis")
    expect(blasOf(["/usr/lib/x86_64-linux-gnu/libc.so.6"])).toBe("unknown")
  })

  it("the bench refuses a baseline on the reference BLAS, or one that does not say", () => {
    expect(torchBaselineRefusal({ blas: "reference", blas_library: "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3" }))
      .toMatch(/reference BLAS \(\/usr\/lib\/x86_64-linux-gnu\/blas\/libblas.so.3\).*libopenblas0-pthread/)
    expect(torchBaselineRefusal({})).toMatch(/did not say which BLAS/)
    expect(torchBaselineRefusal({ blas: "openblas", blas_library: "/usr/lib/x/openblas-pthread/libblas.so.3" }))
      .toBeUndefined()
  })
})
