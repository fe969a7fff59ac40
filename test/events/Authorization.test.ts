import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { canonicalize } from "../../src/domain/CanonicalJson.js"
import {
  commandMessage,
  commandMessageOf,
  storedCommandText,
  storedCommandTextOf
} from "../../src/domain/SignedCommand.js"
import { Authorization } from "../../src/events/Authorization.js"

const auth = fc.record({
  signer: fc.stringMatching(/^[0-9a-f]{64}$/),
  id: fc.string({ minLength: 1, maxLength: 20 }),
  expiresAt: fc.oneof(fc.integer({ min: 0, max: 2 ** 50 }), fc.constantFrom(-0, 2 ** 60, 1e21)),
  network: fc.string({ maxLength: 10 }),
  signature: fc.stringMatching(/^[0-9a-f]{128}$/),
  cosigners: fc.option(
    fc.array(
      fc.record({ signer: fc.stringMatching(/^[0-9a-f]{64}$/), signature: fc.stringMatching(/^[0-9a-f]{128}$/) }),
      { maxLength: 3 }
    ),
    { nil: undefined }
  )
}, { requiredKeys: ["signer", "id", "expiresAt", "network", "signature"] })

describe("Authorization", () => {
  it("is made only of canonical text: other text is refused in one line", () => {
    expect(Authorization.fromText(`{"a":2,"b":1}`).value).toEqual({ a: 2, b: 1 })
    for (const text of [`{"b":1, "a":2}`, `{"b":1,"a":2}`, "not json", `{"a":1.0}`]) {
      expect(() => Authorization.fromText(text)).toThrow(
        "an event's authorization must be the canonical JSON text (RFC 8785) of the signed command"
      )
    }
    const made = Authorization.of({ b: [1, { d: null, c: "é" }], a: undefined })
    expect(made.text).toBe(`{"b":[1,{"c":"é","d":null}]}`)
  })

  it("the texts written by hand around a canonical payload are the canonical texts of the whole", () => {
    fc.assert(
      fc.property(fc.string(), fc.jsonValue(), auth, (command, payload, fields) => {
        const payloadText = canonicalize(payload)
        const { cosigners: _cosigners, signature: _signature, ...unsigned } = fields
        return (
          commandMessageOf(command, payloadText, fields) ===
            `edge-net/command/v1\n${canonicalize({ command, payload, ...unsigned })}` &&
          commandMessageOf(command, payloadText, fields) === commandMessage(command, payload, fields) &&
          storedCommandTextOf(command, payloadText, fields) === canonicalize({ command, payload, auth: fields }) &&
          storedCommandTextOf(command, payloadText, fields) === storedCommandText(command, payload, fields)
        )
      }),
      { numRuns: 500 }
    )
  })
})
