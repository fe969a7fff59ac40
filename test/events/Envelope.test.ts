import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { envelopeHash, sharedFieldsHasher } from "../../src/events/Envelope.js"

describe("Envelope hashing", () => {
  // The writer thread hashes with sharedFieldsHasher; verifyChain and followers with envelopeHash.
  it("an append's shared-fields hasher gives envelopeHash's hash for every event, whatever the strings", () => {
    const text = fc.oneof(fc.string({ unit: "grapheme", maxLength: 16 }), fc.string({ unit: "binary-ascii" }))
    fc.assert(
      fc.property(
        fc.record({
          streamId: text,
          recordedAt: text,
          nodeId: text,
          commandId: fc.option(text),
          causationId: fc.option(text),
          // Raw canonical JSON: a key named like an envelope field must not confuse the assembly.
          authorizationText: fc.option(fc.constantFrom("{\"eventType\":1,\"prevHash\":\"x\"}", "{}", "[1,\"a\"]"))
        }),
        fc.array(
          fc.record({
            eventType: text,
            payloadText: fc.json(),
            position: fc.nat(),
            streamVersion: fc.nat(),
            prevHash: fc.oneof(text, fc.stringMatching(/^[0-9a-f]{64}$/))
          }),
          { minLength: 1, maxLength: 4 }
        ),
        (shared, events) => {
          const hashOf = sharedFieldsHasher(shared)
          for (const event of events) {
            expect(hashOf(event.eventType, event.payloadText, event.position, event.streamVersion, event.prevHash))
              .toBe(envelopeHash({ ...shared, ...event }))
          }
        }
      )
    )
  })
})
