/**
 * The manifests serving resolves, read from the node's registry once per `id[@version]` rather than
 * once per request: a publish or a yank of an id, seen in the journal, forgets what was read for it.
 *
 * The journal is followed from the first lookup on (a node that serves nothing follows nothing). A
 * read that raced a publish of its id is not kept, so the cache never holds what the journal replaced.
 */
import { Effect, Option, Stream } from "effect"
import { Models } from "../actors/registry/Registry.js"
import type { ModelManifest } from "../content/Manifest.js"
import { streamCategory, streamEntityId } from "../domain/Ids.js"
import { Journal } from "../events/Journal.js"
import type { ModelCatalog } from "../sdk/ModelCatalog.js"

/** Ids whose manifests are kept at most: a node serves a handful; others are read each time. */
const IDS_KEPT = 256

export const makeManifestCache = (catalog: ModelCatalog) =>
  Effect.gen(function*() {
    const journal = yield* Journal
    const scope = yield* Effect.scope
    /** By id, then by version asked (`""`: the latest). */
    const known = new Map<string, Map<string, ModelManifest>>()
    /** Changes of each id seen in the journal since following began. */
    const changes = new Map<string, number>()
    let following = false

    const forget = (id: string) => {
      known.delete(id)
      changes.set(id, (changes.get(id) ?? 0) + 1)
    }

    const follow = Effect.suspend(() => {
      if (following) return Effect.void
      following = true
      return Effect.flatMap(journal.head, (head) =>
        Effect.forkIn(
          Stream.runForEach(journal.subscribe(head.position + 1), (envelope) =>
            Effect.sync(() => {
              if (streamCategory(envelope.streamId) === Models.category) forget(streamEntityId(envelope.streamId))
            })),
          scope
        ))
    })

    /** The catalog's answer, from memory when this id did not change since it was read. */
    const manifest = (id: string, version?: string) =>
      Effect.zipRight(
        follow,
        Effect.suspend(() => {
          const hit = known.get(id)?.get(version ?? "")
          if (hit !== undefined) return Effect.succeed(Option.some(hit))
          const before = changes.get(id) ?? 0
          return Effect.tap(catalog.manifest(id, version), (found) =>
            Effect.sync(() => {
              if (Option.isNone(found) || (changes.get(id) ?? 0) !== before) return
              let versions = known.get(id)
              if (versions === undefined) {
                if (known.size >= IDS_KEPT) known.delete(known.keys().next().value!)
                known.set(id, versions = new Map())
              }
              versions.set(version ?? "", found.value)
            }))
        })
      )

    return { manifest } as const
  })
