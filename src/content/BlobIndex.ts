/**
 * The blob store's index: one small SQLite file beside the blobs with each blob's size, CID, last use,
 * pin, references from manifests, the IPFS blocks inside it, and which live processes are using it.
 */
import Database from "better-sqlite3"
import * as fs from "node:fs"
import * as path from "node:path"

export interface BlobRow {
  readonly hex: string
  readonly size: number
  readonly cid: string
  readonly addedAt: number
  readonly lastUsed: number
  readonly pinned: boolean
}

/** Where the bytes of one IPFS block live: a slice of a blob (raw leaf) or the encoded node itself. */
export type BlockLocation =
  | { readonly kind: "leaf"; readonly hex: string; readonly offset: number; readonly length: number }
  | { readonly kind: "node"; readonly bytes: Uint8Array }

export interface BlockRow {
  readonly cid: string
  readonly offset?: number
  readonly length?: number
  readonly node?: Uint8Array
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS blobs (
    hex       TEXT PRIMARY KEY,
    size      INTEGER NOT NULL,
    cid       TEXT    NOT NULL,
    added_at  INTEGER NOT NULL,
    last_used INTEGER NOT NULL,
    pinned    INTEGER NOT NULL DEFAULT 0
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS blobs_by_cid ON blobs (cid);
  CREATE TABLE IF NOT EXISTS blocks (
    cid    TEXT    NOT NULL,
    hex    TEXT    NOT NULL,
    offset INTEGER,
    length INTEGER,
    node   BLOB,
    PRIMARY KEY (cid, hex)
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS blocks_by_blob ON blocks (hex);
  CREATE TABLE IF NOT EXISTS refs (
    hex TEXT NOT NULL,
    ref TEXT NOT NULL,
    PRIMARY KEY (hex, ref)
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS leases (
    hex   TEXT    NOT NULL,
    pid   INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (hex, pid)
  ) WITHOUT ROWID;
`

/** Whether a process exists (ours always does). */
export const isAlive = (pid: number): boolean => {
  if (pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

const toRow = (
  row: { hex: string; size: number; cid: string; added_at: number; last_used: number; pinned: number }
): BlobRow => ({
  hex: row.hex,
  size: row.size,
  cid: row.cid,
  addedAt: row.added_at,
  lastUsed: row.last_used,
  pinned: row.pinned === 1
})

export interface BlobIndex {
  readonly get: (hex: string) => BlobRow | undefined
  readonly byCid: (cid: string) => BlobRow | undefined
  /** Every blob, least recently used first. */
  readonly all: () => Array<BlobRow>
  readonly add: (row: Omit<BlobRow, "pinned" | "lastUsed">, blocks: ReadonlyArray<BlockRow>) => void
  readonly remove: (hex: string) => void
  readonly block: (cid: string) => BlockLocation | undefined
  readonly touch: (hex: string, now: number) => void
  readonly setPinned: (hex: string, pinned: boolean) => boolean
  readonly addRef: (hex: string, ref: string) => void
  readonly removeRef: (hex: string, ref: string) => void
  readonly refsOf: (hex: string) => Array<string>
  readonly referenced: () => Set<string>
  readonly lease: (hex: string) => void
  readonly unlease: (hex: string) => void
  /** True while a live process (this one or another) holds the blob open; leases of dead processes are dropped. */
  readonly inUse: (hex: string) => boolean
  readonly totals: () => { count: number; bytes: number }
  /**
   * Moves whenever the index changes, by this process or another (SQLite's `data_version`, which other
   * connections' commits move, with this connection's own count of changes); may also move without one.
   */
  readonly changeMark: () => string
  readonly close: () => void
}

export const openBlobIndex = (file: string): BlobIndex => {
  fs.mkdirSync(path.dirname(file), { recursive: true })
  const db = new Database(file, { timeout: 5_000 })
  db.pragma("journal_mode = WAL")
  db.pragma("synchronous = normal")
  db.exec(SCHEMA)

  const statements = {
    get: db.prepare("SELECT * FROM blobs WHERE hex = ?"),
    byCid: db.prepare("SELECT * FROM blobs WHERE cid = ? LIMIT 1"),
    all: db.prepare("SELECT * FROM blobs ORDER BY last_used"),
    insert: db.prepare(
      `INSERT INTO blobs (hex, size, cid, added_at, last_used, pinned) VALUES (?, ?, ?, ?, ?, 0)
       ON CONFLICT (hex) DO UPDATE SET last_used = excluded.last_used`
    ),
    insertBlock: db.prepare("INSERT OR IGNORE INTO blocks (cid, hex, offset, length, node) VALUES (?, ?, ?, ?, ?)"),
    block: db.prepare("SELECT hex, offset, length, node FROM blocks WHERE cid = ? LIMIT 1"),
    remove: db.prepare("DELETE FROM blobs WHERE hex = ?"),
    removeBlocks: db.prepare("DELETE FROM blocks WHERE hex = ?"),
    removeRefs: db.prepare("DELETE FROM refs WHERE hex = ?"),
    touch: db.prepare("UPDATE blobs SET last_used = ? WHERE hex = ?"),
    pin: db.prepare("UPDATE blobs SET pinned = ? WHERE hex = ?"),
    addRef: db.prepare("INSERT OR IGNORE INTO refs (hex, ref) VALUES (?, ?)"),
    removeRef: db.prepare("DELETE FROM refs WHERE hex = ? AND ref = ?"),
    refsOf: db.prepare("SELECT ref FROM refs WHERE hex = ? ORDER BY ref"),
    referenced: db.prepare("SELECT DISTINCT hex FROM refs"),
    lease: db.prepare(
      "INSERT INTO leases (hex, pid, count) VALUES (?, ?, 1) ON CONFLICT (hex, pid) DO UPDATE SET count = count + 1"
    ),
    unlease: db.prepare("UPDATE leases SET count = count - 1 WHERE hex = ? AND pid = ?"),
    dropEmptyLeases: db.prepare("DELETE FROM leases WHERE count <= 0"),
    leasesOf: db.prepare("SELECT pid FROM leases WHERE hex = ? AND count > 0"),
    dropLeasesOf: db.prepare("DELETE FROM leases WHERE pid = ?"),
    total: db.prepare("SELECT COUNT(*) AS count, COALESCE(SUM(size), 0) AS bytes FROM blobs"),
    dataVersion: db.prepare<[], number>("PRAGMA data_version").pluck(),
    ownChanges: db.prepare<[], number>("SELECT total_changes()").pluck()
  }

  const add = db.transaction((row: Omit<BlobRow, "pinned" | "lastUsed">, blocks: ReadonlyArray<BlockRow>) => {
    statements.insert.run(row.hex, row.size, row.cid, row.addedAt, row.addedAt)
    for (const block of blocks) {
      statements.insertBlock.run(block.cid, row.hex, block.offset ?? null, block.length ?? null, block.node ?? null)
    }
  })

  const remove = db.transaction((hex: string) => {
    statements.remove.run(hex)
    statements.removeBlocks.run(hex)
    statements.removeRefs.run(hex)
  })

  return {
    get: (hex) => {
      const row = statements.get.get(hex) as Parameters<typeof toRow>[0] | undefined
      return row && toRow(row)
    },
    byCid: (cid: string): BlobRow | undefined => {
      const row = statements.byCid.get(cid) as Parameters<typeof toRow>[0] | undefined
      return row && toRow(row)
    },
    all: () => (statements.all.all() as Array<Parameters<typeof toRow>[0]>).map(toRow),
    add: (row, blocks) => void add(row, blocks),
    remove: (hex) => void remove(hex),
    block: (cid: string): BlockLocation | undefined => {
      const row = statements.block.get(cid) as {
        hex: string
        offset: number | null
        length: number | null
        node: Buffer | null
      } | undefined
      if (row === undefined) return undefined
      if (row.node !== null) return { kind: "node", bytes: new Uint8Array(row.node) }
      return { kind: "leaf", hex: row.hex, offset: row.offset ?? 0, length: row.length ?? 0 }
    },
    touch: (hex: string, now: number) => void statements.touch.run(now, hex),
    setPinned: (hex: string, pinned: boolean) => statements.pin.run(pinned ? 1 : 0, hex).changes > 0,
    addRef: (hex: string, ref: string) => void statements.addRef.run(hex, ref),
    removeRef: (hex: string, ref: string) => void statements.removeRef.run(hex, ref),
    refsOf: (hex: string): Array<string> =>
      (statements.refsOf.all(hex) as Array<{ ref: string }>).map((row) => row.ref),
    referenced: (): Set<string> =>
      new Set((statements.referenced.all() as Array<{ hex: string }>).map((row) => row.hex)),
    lease: (hex: string) => void statements.lease.run(hex, process.pid),
    unlease: (hex: string) => {
      statements.unlease.run(hex, process.pid)
      statements.dropEmptyLeases.run()
    },
    inUse: (hex) => {
      for (const { pid } of statements.leasesOf.all(hex) as Array<{ pid: number }>) {
        if (isAlive(pid)) return true
        statements.dropLeasesOf.run(pid)
      }
      return false
    },
    totals: (): { count: number; bytes: number } => statements.total.get() as { count: number; bytes: number },
    changeMark: () => `${statements.dataVersion.get()}/${statements.ownChanges.get()}`,
    close: () => db.close()
  }
}
