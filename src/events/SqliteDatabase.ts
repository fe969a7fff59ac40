/**
 * The embedded SQLite file behind the journal, snapshots and checkpoints: one better-sqlite3
 * connection per process, WAL mode, a busy timeout for other processes, and numbered migrations.
 */
import Database from "better-sqlite3"
import { Context, Data, Effect, Layer } from "effect"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { Worker } from "node:worker_threads"

export class SqliteError extends Data.TaggedError("SqliteError")<{ readonly file: string; readonly reason: string }> {
  override get message() {
    return `sqlite ${this.file}: ${this.reason}`
  }
}

export type Synchronous = "off" | "normal" | "full"

export interface SqliteOptions {
  readonly file: string
  /** `normal` survives a process crash (SIGKILL) in WAL mode; `full` also survives power loss. */
  readonly synchronous?: Synchronous
  readonly busyTimeoutMs?: number
  /**
   * Run WAL checkpoints on a worker thread (its own connection) instead of inside commits. A checkpoint
   * fsyncs and copies pages; done inline it stalls every writer of the node. Default true.
   */
  readonly backgroundCheckpoints?: boolean
  /**
   * The WAL size at which that thread starts (default 4 MiB, looked at once a second): a node that
   * writes little never needs it, and a thread costs about 18 MB of memory and ten wake-ups a second.
   */
  readonly checkpointerAfterWalBytes?: number
  /** SQLite's wal_autocheckpoint for this connection, in pages. */
  readonly autoCheckpointPages?: number
}

// The journal's historical schema, one entry per version; never edit an entry once released.
const MIGRATIONS: ReadonlyArray<string> = [
  `CREATE TABLE events (
     position       INTEGER PRIMARY KEY,
     stream_id      TEXT    NOT NULL,
     stream_version INTEGER NOT NULL,
     event_type     TEXT    NOT NULL,
     payload        TEXT    NOT NULL,
     recorded_at    TEXT    NOT NULL,
     node_id        TEXT    NOT NULL,
     command_id     TEXT,
     causation_id   TEXT,
     prev_hash      TEXT    NOT NULL,
     hash           TEXT    NOT NULL,
     UNIQUE (stream_id, stream_version)
   );
   CREATE TABLE heads (
     position   INTEGER PRIMARY KEY,
     hash       TEXT NOT NULL,
     public_key TEXT NOT NULL,
     signature  TEXT NOT NULL
   );
   CREATE TABLE snapshots (
     stream_id TEXT PRIMARY KEY,
     version   INTEGER NOT NULL,
     state     TEXT    NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE checkpoints (
     name     TEXT PRIMARY KEY,
     position INTEGER NOT NULL
   ) WITHOUT ROWID;`,
  // The signed command that caused an event (canonical JSON), null for the events before it existed.
  `ALTER TABLE events ADD COLUMN authorization TEXT;`,
  // Snapshots name the event they were taken at and carry the node's seal; older ones (a cache) are dropped.
  `DROP TABLE snapshots;
   CREATE TABLE snapshots (
     stream_id  TEXT    PRIMARY KEY,
     version    INTEGER NOT NULL,
     position   INTEGER NOT NULL,
     event_hash TEXT    NOT NULL,
     state      TEXT    NOT NULL,
     seal       TEXT    NOT NULL
   ) WITHOUT ROWID;`,
  // Events a policy gave up on after its retries (Checkpoints.ts says why they live beside the checkpoints).
  // IF NOT EXISTS: a file whose user_version was set back by hand runs this again over its own table.
  `CREATE TABLE IF NOT EXISTS dead_letters (
     policy     TEXT    NOT NULL,
     position   INTEGER NOT NULL,
     stream_id  TEXT    NOT NULL,
     event_type TEXT    NOT NULL,
     error      TEXT    NOT NULL,
     attempts   INTEGER NOT NULL,
     failed_at  TEXT    NOT NULL,
     PRIMARY KEY (policy, position)
   ) WITHOUT ROWID;`
]

/** True for SQLite's "database is locked" (another connection holds the write lock). */
export const isBusy = (error: unknown): boolean =>
  typeof error === "object" && error !== null && "code" in error &&
  (error.code === "SQLITE_BUSY" || error.code === "SQLITE_LOCKED")

/**
 * The journal holds every account's history: only its owner reads it. A new file (and any directory
 * made for it) is created private; an existing one readable by others is made private, with its WAL.
 */
const makePrivate = (file: string): void => {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
  // SQLite gives the -wal and -shm files the main file's mode, so creating it 0600 covers them.
  fs.closeSync(fs.openSync(file, "a", 0o600))
  for (const name of [file, `${file}-wal`, `${file}-shm`]) {
    try {
      if ((fs.statSync(name).mode & 0o077) !== 0) fs.chmodSync(name, 0o600)
    } catch {
      // Absent (no WAL yet) or not ours to change: nothing to tighten.
    }
  }
}

export const openDatabase = (options: SqliteOptions): Database.Database => {
  if (options.file !== ":memory:") makePrivate(path.resolve(options.file))
  const db = new Database(options.file, { timeout: options.busyTimeoutMs ?? 5_000 })
  db.pragma("journal_mode = WAL")
  db.pragma(`synchronous = ${options.synchronous ?? "normal"}`)
  db.pragma("foreign_keys = ON")
  db.pragma("cache_size = -65536")
  if (options.autoCheckpointPages !== undefined) db.pragma(`wal_autocheckpoint = ${options.autoCheckpointPages}`)
  migrate(db)
  return db
}

// Plain CommonJS so it runs as an eval'd worker both from sources (tests) and from dist.
const CHECKPOINTER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads")
const Database = require(workerData.driver)
const db = new Database(workerData.file, { timeout: workerData.busyTimeoutMs })
let timer
const checkpoint = () => { try { db.pragma("wal_checkpoint(PASSIVE)") } catch {} }
const loop = () => { checkpoint(); timer = setTimeout(loop, workerData.intervalMs) }
timer = setTimeout(loop, workerData.intervalMs)
parentPort.on("message", () => { clearTimeout(timer); checkpoint(); db.close(); parentPort.postMessage("closed"); parentPort.close() })
`

/** Writers still checkpoint by themselves past this many WAL pages, should the checkpointer fall behind. */
export const INLINE_CHECKPOINT_PAGES = 16_384

/** The WAL size at which the checkpointer thread starts, unless told otherwise. */
export const CHECKPOINTER_AFTER_WAL_BYTES = 4 * 1024 * 1024

const startCheckpointer = (options: SqliteOptions): Worker => {
  const worker = new Worker(CHECKPOINTER_SOURCE, {
    eval: true,
    workerData: {
      driver: createRequire(import.meta.url).resolve("better-sqlite3"),
      file: path.resolve(options.file),
      busyTimeoutMs: options.busyTimeoutMs ?? 5_000,
      intervalMs: 100
    }
  })
  worker.unref()
  return worker
}

const stopCheckpointer = (worker: Worker) =>
  Effect.async<void>((resume) => {
    worker.once("message", () => resume(Effect.void))
    worker.once("exit", () => resume(Effect.void))
    worker.once("error", () => resume(Effect.void))
    worker.postMessage("stop")
  }).pipe(Effect.timeout("5 seconds"), Effect.ignore)

/**
 * The checkpointer thread, started once the WAL has grown past the threshold (its size is looked at
 * once a second, off the event loop); stopped with the scope. Says whether it has started.
 */
const checkpointWhenWritten = (options: SqliteOptions) =>
  Effect.gen(function*() {
    const wal = `${path.resolve(options.file)}-wal`
    const threshold = options.checkpointerAfterWalBytes ?? CHECKPOINTER_AFTER_WAL_BYTES
    let worker: Worker | undefined
    let closed = false
    const look = setInterval(() =>
      fs.stat(wal, (error, stats) => {
        if (error !== null || closed || worker !== undefined || stats.size < threshold) return
        clearInterval(look)
        worker = startCheckpointer(options)
      }), 1_000)
    look.unref()
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        closed = true
        clearInterval(look)
        return worker === undefined ? Effect.void : stopCheckpointer(worker)
      })
    )
    return () => worker !== undefined
  })

const migrate = (db: Database.Database): void => {
  // BEGIN IMMEDIATE: two processes opening a fresh file must not both run migration 1.
  db.transaction(() => {
    const current = db.pragma("user_version", { simple: true }) as number
    if (current > MIGRATIONS.length) {
      throw new Error(`database schema version ${current} is newer than this edge-net (${MIGRATIONS.length})`)
    }
    for (let version = current; version < MIGRATIONS.length; version++) db.exec(MIGRATIONS[version]!)
    db.pragma(`user_version = ${MIGRATIONS.length}`)
  }).immediate()
}

export class SqliteDatabase extends Context.Tag("edge-net/SqliteDatabase")<
  SqliteDatabase,
  {
    readonly file: string
    readonly db: Database.Database
    readonly options: SqliteOptions
    /** Whether the background checkpointer thread has started (see `checkpointerAfterWalBytes`). */
    readonly checkpointing: () => boolean
  }
>() {
  static readonly layer = (options: SqliteOptions) =>
    Layer.scoped(
      SqliteDatabase,
      Effect.gen(function*() {
        const opened = yield* Effect.acquireRelease(
          Effect.try({
            try: () => {
              const db = openDatabase({ ...options, autoCheckpointPages: INLINE_CHECKPOINT_PAGES })
              // This thread's connection reads (WAL reads never wait) and writes only snapshots and
              // checkpoints. It must never sleep in SQLite's busy handler while the writer thread
              // holds the lock: that would stall the event loop. A busy write fails at once instead,
              // and its caller retries asynchronously or skips.
              db.pragma("busy_timeout = 0")
              return { file: options.file, db, options }
            },
            catch: (cause) =>
              new SqliteError({ file: options.file, reason: cause instanceof Error ? cause.message : String(cause) })
          }),
          ({ db }) => Effect.sync(() => db.close())
        )
        // Released before the connection closes: the last connection to close folds the WAL back in.
        const checkpointing = options.backgroundCheckpoints ?? true
          ? yield* checkpointWhenWritten(options)
          : () => false
        return { ...opened, checkpointing }
      })
    )
}
