/**
 * The signed command a fiber is handling, carried alongside it so the journal stores the signature
 * with the events that command caused: a replayer can then check that every change was authorized.
 */
import { Effect, FiberRef } from "effect"

/**
 * The canonical JSON text (RFC 8785) of the signed command whose handling is running, or null.
 * Set by the RPC layer around one command; policies run on their own fibers and carry none.
 */
export const CurrentAuthorization: FiberRef.FiberRef<string | null> = FiberRef.unsafeMake<string | null>(null)

/** Runs `effect` with `text` as its authorization; appends made for it store the text. */
export const withAuthorization =
  (text: string | null) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.locally(effect, CurrentAuthorization, text)
