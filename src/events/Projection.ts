/**
 * An in-memory read model that catches up from the journal when read: pages of stored records from
 * where it stopped, each record of its categories handed to `apply` (others skipped unparsed), one
 * catch-up at a time.
 */
import { Effect } from "effect"
import { streamCategory } from "../domain/Ids.js"
import type { StoredRecord } from "./Envelope.js"
import { Journal } from "./Journal.js"

const PAGE = 4096

export const makeProjection = (categories: ReadonlyArray<string>, apply: (record: StoredRecord) => void) =>
  Effect.gen(function*() {
    const journal = yield* Journal
    const wanted = new Set(categories)
    const lock = yield* Effect.makeSemaphore(1)
    let position = 0
    /** Folds in everything appended since the last catch-up. */
    const catchUp = lock.withPermits(1)(
      Effect.gen(function*() {
        while (true) {
          const page = yield* journal.readRecords(position + 1, PAGE)
          for (const record of page) {
            position = record.position
            if (wanted.has(streamCategory(record.streamId))) apply(record)
          }
          if (page.length < PAGE) return
        }
      })
    )
    return { catchUp, position: () => position } as const
  })
