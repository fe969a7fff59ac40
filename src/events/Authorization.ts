/**
 * The signed command a fiber is handling, carried alongside it so the journal stores the signature
 * with the events that command caused: a replayer can then check that every change was authorized.
 */
import { Effect, FiberRef } from "effect"
import { canonicalize } from "../domain/CanonicalJson.js"

/**
 * A signed command as the journal stores it: its RFC 8785 canonical text, which the event hashes
 * cover raw, and the JSON value that text denotes. Only canonical text can be made into one, so the
 * journal takes it without checking it again.
 */
export class Authorization {
  #value: unknown
  #parsed: boolean

  private constructor(
    readonly text: string,
    value: unknown,
    parsed: boolean
  ) {
    this.#value = value
    this.#parsed = parsed
  }

  /** The JSON value the text denotes (parsed on first use when the authorization was made from text). */
  get value(): unknown {
    if (!this.#parsed) {
      this.#value = JSON.parse(this.text)
      this.#parsed = true
    }
    return this.#value
  }

  /** Of any JSON value: canonicalized here. */
  static of(value: unknown): Authorization {
    return new Authorization(canonicalize(value), value, true)
  }

  /** Of text that must already be canonical JSON; throws on anything else. */
  static fromText(text: string): Authorization {
    let canonical: string | undefined
    try {
      canonical = canonicalize(JSON.parse(text))
    } catch {
      canonical = undefined
    }
    if (canonical !== text) {
      throw new Error("an event's authorization must be the canonical JSON text (RFC 8785) of the signed command")
    }
    return new Authorization(text, undefined, false)
  }

  /**
   * Of `text` that the caller wrote canonically itself, from parts it canonicalized (the signed-command
   * gate does), with the value it denotes: nothing is checked, so nothing else should call this.
   */
  static unsafeCanonical(text: string, value: unknown): Authorization {
    return new Authorization(text, value, true)
  }
}

/**
 * The signed command whose handling is running, or null. Set by the RPC layer around one command;
 * policies run on their own fibers and carry none.
 */
export const CurrentAuthorization: FiberRef.FiberRef<Authorization | null> = FiberRef.unsafeMake<Authorization | null>(
  null
)

/** Runs `effect` with `authorization` as its signed command; appends made for it store it. */
export const withAuthorization =
  (authorization: Authorization | null) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.locally(effect, CurrentAuthorization, authorization)
