/**
 * A second process for journal tests: appends `count` events to the SQLite journal at `file`, one
 * transaction per event, then exits. Usage: node --import tsx test/support/appender.ts FILE COUNT PREFIX
 */
import { Effect, Layer } from "effect"
import { NodeKey } from "../../src/content/NodeKey.js"
import { Journal } from "../../src/events/Journal.js"
import { SqliteDatabase } from "../../src/events/SqliteDatabase.js"
import * as SqliteJournal from "../../src/events/SqliteJournal.js"

const [file, count, prefix] = process.argv.slice(2)

const program = Effect.gen(function*() {
  const journal = yield* Journal
  for (let i = 0; i < Number(count); i++) {
    yield* journal.append(`${prefix}-${i % 3}`, "any", [{ eventType: "Counted", payload: { n: i, from: "child" } }])
  }
})

Effect.runPromise(
  program.pipe(
    Effect.provide(
      SqliteJournal.layer().pipe(Layer.provide(SqliteDatabase.layer({ file: file! })), Layer.provide(NodeKey.ephemeral))
    ),
    Effect.scoped
  )
).catch((error) => {
  console.error(error)
  process.exit(1)
})
