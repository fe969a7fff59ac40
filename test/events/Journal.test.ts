import { Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { NodeKey } from "../../src/content/NodeKey.js"
import * as MemoryJournal from "../../src/events/MemoryJournal.js"
import { SqliteDatabase } from "../../src/events/SqliteDatabase.js"
import * as SqliteJournal from "../../src/events/SqliteJournal.js"
import { journalContract } from "./JournalContract.js"

journalContract("memory", (options) => MemoryJournal.layerWith(options ?? {}).pipe(Layer.provide(NodeKey.ephemeral)))

journalContract("sqlite", (options) =>
  SqliteJournal.layer(options).pipe(
    Layer.provide(
      SqliteDatabase.layer({
        file: path.join(fs.mkdtempSync(path.join(os.tmpdir(), "edge-net-journal-")), "journal.db")
      })
    ),
    Layer.provide(NodeKey.ephemeral)
  ))
