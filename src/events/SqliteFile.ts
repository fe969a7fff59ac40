/**
 * The SQLite file itself, without Effect: its pragmas, private permissions and numbered migrations.
 * The journal's writer thread opens its connection with this alone (SqliteDatabase.ts is the layer),
 * so the thread loads no Effect runtime (about 10 MB of heap less, and a faster start).
 */
import Database from "better-sqlite3"
import * as fs from "node:fs"
import * as path from "node:path"

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
  /**
   * How long the checkpointer thread stays once the WAL is wholly checkpointed and no longer grows
   * (default 30 s); it then truncates the WAL and stops, until the WAL passes the threshold again.
   */
  readonly checkpointerIdleStopMs?: number
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

/** Writers still checkpoint by themselves past this many WAL pages, should the checkpointer fall behind. */
export const INLINE_CHECKPOINT_PAGES = 16_384

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
