/**
 * A manifest written by hand: the seed's 4.4 example is completed from the files beside it with a
 * warning for each placeholder and for what no one checks; a real digest that does not match its file,
 * or a signed manifest whose files changed, is refused.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { describeFile } from "../../src/content/ArtifactSignature.js"
import { completeManifest, isManifestText, stripJsonComments } from "../../src/content/ManifestDraft.js"
import { signAsPublisher } from "../../src/content/ManifestSigning.js"
import { keyPairFromSeed } from "../../src/content/NodeKey.js"
import { tempDir } from "../support/TempDir.js"

const pair = keyPairFromSeed(new Uint8Array(32).fill(3))
const signer = { keyId: "alice", publicKey: pair.publicKey, sign: (message: string) => pair.sign(message) }
const seedManifest = fs.readFileSync("test/fixtures/seed/manifest.json", "utf8")

const modelDirectory = () => {
  const directory = tempDir("manifest-draft-")
  fs.writeFileSync(path.join(directory, "model.onnx"), crypto.randomBytes(1000))
  fs.writeFileSync(path.join(directory, "tokenizer.json"), "{}")
  fs.writeFileSync(path.join(directory, "config.json"), "{}")
  return directory
}

const options = (directory: string) => ({
  directory,
  signer,
  describe: describeFile,
  expiresInDays: 30,
  now: new Date("2026-12-04T12:00:00Z")
})

describe("ManifestDraft", () => {
  it("keeps // inside strings and drops comments; tells a manifest from other JSON", () => {
    expect(JSON.parse(stripJsonComments("{ \"url\": \"https://a/b\", // a comment\n \"n\": 1 /* another */ }")))
      .toEqual({ url: "https://a/b", n: 1 })
    expect(isManifestText(seedManifest)).toBe(true)
    expect(isManifestText(fs.readFileSync("models/reference/tiny-lm/tokenizer.json", "utf8"))).toBe(false)
  })

  it.effect("completes the seed's example from the files beside it, saying what was a placeholder and what no one checks", () =>
    Effect.gen(function*() {
      const directory = modelDirectory()
      const { manifest, warnings } = yield* completeManifest(seedManifest, options(directory))
      const model = manifest.artifacts["model"]!
      expect(model).toMatchObject({
        filename: "model.onnx",
        size: 1000,
        sha256: crypto.createHash("sha256").update(fs.readFileSync(path.join(directory, "model.onnx"))).digest("hex")
      })
      expect(model.cid).toMatch(/^bafk/)
      expect(manifest).toMatchObject({
        id: "phi-1.5-q4",
        publishedAt: "2026-01-03T00:00:00Z",
        publishedBy: "ruvector-team",
        expiresAt: "2027-01-03T12:00:00Z"
      })
      expect(warnings).toHaveLength(3 * 2 + 2)
      expect(warnings).toContain(
        `artifacts.model.sha256 "a3f8c2d1e4b5..." is not a SHA-256 digest: set to model.onnx's, ${model.sha256}`
      )
      expect(warnings).toContain("artifacts.model.size 734003200 is not model.onnx's size: set to 1000")
      expect(warnings.find((warning) => warning.startsWith("artifacts.model.signature"))).toMatch(
        /"MEUCIQDx\.\.\." is kept, but nothing checks it: it is not an Ed25519 signature of model\.onnx by the signing key alice/
      )
      expect(warnings.find((warning) => warning.startsWith("publishedBy"))).toMatch(
        /^publishedBy "ruvector-team" is only a name: readers trust the key that signs, alice/
      )
    }))

  it.effect("refuses a real digest that is not its file's, and a signed manifest whose file changed", () =>
    Effect.gen(function*() {
      const directory = modelDirectory()
      const wrong = seedManifest.replace("\"a3f8c2d1e4b5...\"", `"${"0".repeat(64)}"`)
      const refused = yield* Effect.flip(completeManifest(wrong, options(directory)))
      expect(refused.message).toMatch(
        /^invalid manifest: artifacts\.model\.sha256 is 0{64}, but model\.onnx beside the manifest has [0-9a-f]{64}$/
      )

      const { manifest } = yield* completeManifest(seedManifest, options(directory))
      const signed = JSON.stringify(signAsPublisher(manifest, signer))
      expect((yield* completeManifest(signed, options(directory))).manifest.signatures).toHaveLength(1)
      fs.writeFileSync(path.join(directory, "config.json"), "{\"changed\": true}")
      const changed = yield* Effect.flip(completeManifest(signed, options(directory)))
      expect(changed.message).toMatch(
        /config\.json beside the manifest has|files beside the manifest are not the ones it names/
      )
    }))
})
