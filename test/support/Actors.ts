/**
 * How a test reaches an actor behind its service: the audit's replay check from the actor registry,
 * or a runner of its own on the same journal (as a second process writing to the log would be).
 */
import { Effect } from "effect"
import { ActorRegistry } from "../../src/events/ActorRegistry.js"
import * as ActorRunner from "../../src/events/ActorRunner.js"
import type { EventSourced } from "../../src/events/Decider.js"

/** The entities of `category` whose replay from the log differs from their live state (empty when all agree). */
export const replayMismatches = (category: string) =>
  Effect.gen(function*() {
    const actor = (yield* (yield* ActorRegistry).actors).find((registered) => registered.category === category)
    if (actor === undefined) return yield* Effect.die(new Error(`no actor of category ${category} is registered`))
    return (yield* actor.compareReplay).mismatches
  })

/** A runner of the test's own on the actor's streams: what a crash mid-way, or another writer, leaves in the log. */
export const anotherRunner = <Command, Event extends { readonly _tag: string }, State, Err, R>(
  definition: EventSourced<Command, Event, State, Err, R>
) => ActorRunner.make(definition, { snapshotEvery: 0 })
