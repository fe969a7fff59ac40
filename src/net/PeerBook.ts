/**
 * The peers an operator named (`edge-net peers add`), kept in `<data>/peers.json` across restarts:
 * each is an address to dial at start, and may be a feed this node follows. Peers found by discovery
 * are not written here; they are found again.
 */
import { Data, Effect, Either, Schema } from "effect"
import { base58btc } from "multiformats/bases/base58"
import * as fs from "node:fs"
import * as path from "node:path"
import { jsonDecoder } from "../domain/JsonText.js"
import { writeFileAtomicallySync } from "../node/AtomicFile.js"

export class PeerBookError extends Data.TaggedError("PeerBookError")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

/** A multiaddr that names its peer: `/ip4/127.0.0.1/tcp/7879/p2p/12D3Koo...`. */
export const PeerAddress = Schema.String.pipe(
  Schema.pattern(/^\/.+\/p2p\/[1-9A-HJ-NP-Za-km-z]{46,60}$/, {
    message: () => "a peer address is a multiaddr ending in /p2p/<peer id>, e.g. /ip4/10.0.0.2/tcp/7879/p2p/12D3KooW..."
  })
)

export const PeerIdText = Schema.String.pipe(
  Schema.pattern(/^[1-9A-HJ-NP-Za-km-z]{46,60}$/, { message: () => "a peer id is base58 text such as 12D3KooW..." })
)

export const BookEntry = Schema.Struct({
  peerId: PeerIdText,
  address: PeerAddress,
  /** This node keeps a verified copy of the peer's journal feed. */
  follow: Schema.Boolean
})
export type BookEntry = typeof BookEntry.Type

const BookFile = Schema.Struct({ peers: Schema.Array(BookEntry) })
const decodeBook = jsonDecoder(BookFile)

export const peerBookFile = (dataDir: string) => path.join(dataDir, "peers.json")

/** Where a followed feed's verified copy lives. */
export const feedFile = (dataDir: string, peerId: string) => path.join(dataDir, "feeds", `${peerId}.db`)

// A peer id of an Ed25519 key is the identity multihash (0x00, length 36) of the key's protobuf
// (field 1 KeyType = 1 Ed25519, field 2 Data of 32 bytes): the key is read from the id itself.
const ED25519_PEER_ID_PREFIX = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20]

/** The Ed25519 public key (hex) a peer id names, without loading libp2p; undefined for any other id. */
export const publicKeyOfPeerId = (peerId: string): string | undefined => {
  let bytes: Uint8Array
  try {
    bytes = base58btc.baseDecode(peerId)
  } catch {
    return undefined
  }
  if (bytes.length !== 38 || ED25519_PEER_ID_PREFIX.some((byte, i) => bytes[i] !== byte)) return undefined
  return Buffer.from(bytes.subarray(6)).toString("hex")
}

/** The peer id of an Ed25519 public key (hex): the inverse of `publicKeyOfPeerId`. */
export const peerIdOfPublicKey = (publicKey: string): string =>
  base58btc.baseEncode(Uint8Array.from([...ED25519_PEER_ID_PREFIX, ...Buffer.from(publicKey, "hex")]))

export const peerIdOfAddress = (address: string): string => address.slice(address.lastIndexOf("/p2p/") + 5)

export interface PeerBook {
  readonly entries: () => ReadonlyArray<BookEntry>
  readonly put: (entry: BookEntry) => Effect.Effect<void, PeerBookError>
  /** Forgets the peer; false when the book did not have it. */
  readonly remove: (peerId: string) => Effect.Effect<boolean, PeerBookError>
}

/** Opens the book at `<data>/peers.json` (an absent file is an empty book; a bad one is refused). */
export const openPeerBook = (dataDir: string): Effect.Effect<PeerBook, PeerBookError> =>
  Effect.gen(function*() {
    const file = peerBookFile(dataDir)
    const text = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : `{"peers":[]}`
    const book = decodeBook(text, file)
    if (Either.isLeft(book)) return yield* Effect.fail(new PeerBookError({ reason: book.left.message }))
    let entries: ReadonlyArray<BookEntry> = book.right.peers
    const save = (next: ReadonlyArray<BookEntry>) =>
      Effect.try({
        try: () => {
          writeFileAtomicallySync(file, `${JSON.stringify({ peers: next }, null, 2)}\n`, { mode: 0o600 })
          entries = next
        },
        catch: (error) => new PeerBookError({ reason: `cannot write ${file}: ${String(error)}` })
      })
    return {
      entries: () => entries,
      put: (entry) => save([...entries.filter((known) => known.peerId !== entry.peerId), entry]),
      remove: (peerId) =>
        entries.some((known) => known.peerId === peerId)
          ? Effect.as(save(entries.filter((known) => known.peerId !== peerId)), true)
          : Effect.succeed(false)
    }
  })
