/**
 * IPFS CIDs for our blobs, laid out exactly as kubo's `ipfs add --cid-version=1` lays them out, so any
 * IPFS node or gateway agrees on the root CID, and walking (and verifying) such a DAG back into leaves.
 */
import * as dagPb from "@ipld/dag-pb"
import { Data, Effect } from "effect"
import { UnixFS } from "ipfs-unixfs"
import { equals as bytesEqual } from "multiformats/bytes"
import { CID } from "multiformats/cid"
import * as raw from "multiformats/codecs/raw"
import { create as createDigest } from "multiformats/hashes/digest"
import { sha256 } from "./Sha256.js"

/** kubo's default fixed-size chunk (`size-262144`). */
export const CHUNK_SIZE = 262144
/** kubo's balanced layout puts at most this many links in one node. */
export const MAX_LINKS = 174

const SHA2_256 = 0x12
// A balanced tree of 174-link nodes over 256 KiB leaves is 5 levels deep at 2^53 bytes; anything
// deeper is not the kubo layout, and the cap keeps a hostile source from leading us down a chain.
const MAX_DEPTH = 8
// Internal nodes are small (a few KB), so fetching a handful at once costs nothing and hides latency.
const FETCH_CONCURRENCY = 8

export interface Leaf {
  readonly cid: string
  readonly offset: number
  readonly length: number
  readonly sha256: Uint8Array
}

/** An encoded dag-pb block of an internal node. */
export interface DagNode {
  readonly cid: string
  readonly bytes: Uint8Array
}

export interface UnixFsLayout {
  /** The root CID (base32, CIDv1): a raw leaf for files of at most one chunk, else a dag-pb node. */
  readonly root: string
  readonly size: number
  /** The raw leaves in file order; their bytes are the file's bytes at offset/length. */
  readonly leaves: ReadonlyArray<Leaf>
  /** Every internal node, root first (depth-first); empty when the root is a leaf. */
  readonly nodes: ReadonlyArray<DagNode>
}

export type ResolvedLayout = UnixFsLayout

export class CidError extends Data.TaggedError("CidError")<{ readonly cid: string; readonly reason: string }> {
  override get message() {
    return `block ${this.cid} ${this.reason}`
  }
}

const cidOf = (codec: number, digest: Uint8Array): CID => CID.createV1(codec, createDigest(SHA2_256, digest))

/** Parses a CID in any base multiformats reads without extra decoders (base32, base58btc); undefined if malformed. */
export const parseCid = (text: string): CID | undefined => {
  try {
    return CID.parse(text)
  } catch {
    return undefined
  }
}

/** True when `bytes` hash (sha2-256, the only hash we accept) to the digest inside `cid`. */
export const verifyBlock = (cid: string, bytes: Uint8Array): boolean => {
  const parsed = parseCid(cid)
  return parsed !== undefined && parsed.multihash.code === SHA2_256 &&
    bytesEqual(parsed.multihash.digest, sha256(bytes))
}

// ---------------------------------------------------------------------------------------------------
// Building

/** What a parent needs to know about a child: its CID, the file bytes under it, and its DAG size (Tsize). */
interface Child {
  readonly cid: CID
  readonly fileSize: number
  readonly dagSize: number
}

/** A dag-pb node holding UnixFS `file` data with one blocksize per child and no inline data. */
const encodeFileNode = (children: ReadonlyArray<Child>): Child & { readonly bytes: Uint8Array } => {
  const unixFs = new UnixFS({ type: "file", blockSizes: children.map((child) => BigInt(child.fileSize)) })
  const bytes = dagPb.encode({
    Data: unixFs.marshal(),
    // kubo writes an empty name on every file link; leaving it out changes the bytes and so the CID.
    Links: children.map((child) => ({ Hash: child.cid, Name: "", Tsize: child.dagSize }))
  })
  return {
    cid: cidOf(dagPb.code, sha256(bytes)),
    bytes,
    fileSize: children.reduce((sum, child) => sum + child.fileSize, 0),
    dagSize: children.reduce((sum, child) => sum + child.dagSize, bytes.length)
  }
}

/**
 * Kubo's balanced layout: group the leaves 174 at a time under new nodes, then those nodes, until one
 * is left. Nodes are returned root first, depth-first, as a DAG walk (and a CAR) meets them.
 */
const balancedTree = (leaves: ReadonlyArray<Child>): { readonly root: CID; readonly nodes: Array<DagNode> } => {
  // levels[0] holds the parents of the leaves, the last level the root alone.
  const levels: Array<Array<Child & { readonly bytes: Uint8Array }>> = []
  let level: ReadonlyArray<Child> = leaves
  while (levels.length === 0 || level.length > 1) {
    const parents = []
    for (let start = 0; start < level.length; start += MAX_LINKS) {
      parents.push(encodeFileNode(level.slice(start, start + MAX_LINKS)))
    }
    levels.push(parents)
    level = parents
  }
  const nodes: Array<DagNode> = []
  // Node `index` of a level has children index*174 ... index*174+173 on the level below.
  const visit = (depth: number, index: number): void => {
    const node = levels[depth]![index]!
    nodes.push({ cid: node.cid.toString(), bytes: node.bytes })
    const below = levels[depth - 1]
    if (below === undefined) return
    for (let child = index * MAX_LINKS; child < Math.min((index + 1) * MAX_LINKS, below.length); child++) {
      visit(depth - 1, child)
    }
  }
  visit(levels.length - 1, 0)
  return { root: level[0]!.cid, nodes }
}

export interface UnixFsBuilder {
  /** Feeds the next bytes of the file, in slices of any size. */
  readonly update: (bytes: Uint8Array) => void
  /** Ends the file and returns its layout; the builder takes no more bytes after this. */
  readonly finish: () => UnixFsLayout
}

/**
 * A streaming builder: hashes each 256 KiB chunk once as it completes and keeps only digests, so a
 * multi-GB file costs one chunk of carry-over plus a few hundred bytes per chunk, never its bytes.
 */
export const UnixFsBuilder = {
  make: (): UnixFsBuilder => {
    const leaves: Array<Leaf> = []
    const children: Array<Child> = []
    let carry: Uint8Array | undefined
    let carryLength = 0
    let size = 0
    let layout: UnixFsLayout | undefined

    const addLeaf = (chunk: Uint8Array): void => {
      const digest = sha256(chunk)
      const cid = cidOf(raw.code, digest)
      leaves.push({ cid: cid.toString(), offset: size, length: chunk.length, sha256: digest })
      children.push({ cid, fileSize: chunk.length, dagSize: chunk.length })
      size += chunk.length
    }

    const update = (bytes: Uint8Array): void => {
      if (layout !== undefined) throw new Error("UnixFsBuilder.update after finish")
      let position = 0
      if (carryLength > 0) {
        position = Math.min(CHUNK_SIZE - carryLength, bytes.length)
        carry!.set(bytes.subarray(0, position), carryLength)
        carryLength += position
        if (carryLength < CHUNK_SIZE) return
        addLeaf(carry!)
        carryLength = 0
      }
      // Whole chunks inside this slice are hashed where they lie; only a trailing partial one is copied.
      for (; bytes.length - position >= CHUNK_SIZE; position += CHUNK_SIZE) {
        addLeaf(bytes.subarray(position, position + CHUNK_SIZE))
      }
      if (position < bytes.length) {
        carry ??= new Uint8Array(CHUNK_SIZE)
        carry.set(bytes.subarray(position))
        carryLength = bytes.length - position
      }
    }

    const finish = (): UnixFsLayout => {
      if (layout !== undefined) return layout
      // An empty file is one empty raw leaf, as kubo makes it.
      if (carryLength > 0 || leaves.length === 0) addLeaf((carry ?? new Uint8Array(0)).subarray(0, carryLength))
      carry = undefined
      if (leaves.length === 1) {
        layout = { root: leaves[0]!.cid, size, leaves, nodes: [] }
      } else {
        const tree = balancedTree(children)
        layout = { root: tree.root.toString(), size, leaves, nodes: tree.nodes }
      }
      children.length = 0
      return layout
    }

    return { update, finish }
  }
} as const

/** The layout of bytes already in memory. */
export const layoutOf = (bytes: Uint8Array): UnixFsLayout => {
  const builder = UnixFsBuilder.make()
  builder.update(bytes)
  return builder.finish()
}

// ---------------------------------------------------------------------------------------------------
// Resolving

/** The part of a file under one node, with leaf offsets relative to the node's first byte. */
interface Subtree {
  readonly size: number
  readonly leaves: ReadonlyArray<{ readonly cid: CID; readonly length: number }>
  readonly nodes: ReadonlyArray<DagNode>
}

interface FileNode {
  readonly links: ReadonlyArray<CID>
  readonly blockSizes: ReadonlyArray<number>
}

/** Decodes an internal node, refusing anything but a kubo-style UnixFS file node. */
const decodeFileNode = (cid: string, bytes: Uint8Array): FileNode => {
  const refuse = (reason: string) => new CidError({ cid, reason })
  let node: dagPb.PBNode
  let unixFs: UnixFS
  try {
    node = dagPb.decode(bytes)
    if (node.Data === undefined) throw refuse("has no UnixFS data")
    unixFs = UnixFS.unmarshal(node.Data)
  } catch (cause) {
    throw cause instanceof CidError
      ? cause
      : refuse(`is not a UnixFS dag-pb node (${cause instanceof Error ? cause.message : String(cause)})`)
  }
  if (unixFs.type !== "file") throw refuse(`is a UnixFS ${unixFs.type}, not a file`)
  if (unixFs.data !== undefined && unixFs.data.length > 0) {
    throw refuse("carries inline file data (not the raw-leaves layout)")
  }
  if (node.Links.length === 0) throw refuse("is a file node without links")
  if (node.Links.length > MAX_LINKS) throw refuse(`has ${node.Links.length} links, more than ${MAX_LINKS}`)
  if (unixFs.blockSizes.length !== node.Links.length) {
    throw refuse(`has ${node.Links.length} links but ${unixFs.blockSizes.length} blocksizes`)
  }
  const blockSizes = unixFs.blockSizes.map(Number)
  if (!blockSizes.every(Number.isSafeInteger)) throw refuse("has a blocksize beyond 2^53")
  return { links: node.Links.map((link) => link.Hash), blockSizes }
}

/**
 * Walks a file's DAG from its root, fetching (and verifying) every internal node with `getBlock`.
 * Leaves are not fetched: their lengths come from their parents' blocksizes and their sha256 from their
 * CIDs, so a downloader can fetch them afterwards, in parallel, checking each with `verifyBlock`. Only
 * a raw root is fetched, since nothing else says how long it is. Errors of `getBlock` pass through.
 */
export const resolveLeaves = <E, R>(
  root: string,
  getBlock: (cid: string) => Effect.Effect<Uint8Array, E, R>
): Effect.Effect<ResolvedLayout, CidError | E, R> => {
  const fetchVerified = (cid: CID): Effect.Effect<Uint8Array, CidError | E, R> =>
    Effect.flatMap(
      getBlock(cid.toString()),
      (bytes) =>
        verifyBlock(cid.toString(), bytes)
          ? Effect.succeed(bytes)
          : Effect.fail(new CidError({ cid: cid.toString(), reason: "does not match its CID" }))
    )

  const resolveNode = (
    cid: CID,
    expectedSize: number | undefined,
    depth: number
  ): Effect.Effect<Subtree, CidError | E, R> =>
    Effect.gen(function*() {
      if (depth > MAX_DEPTH) {
        return yield* new CidError({ cid: cid.toString(), reason: `lies deeper than ${MAX_DEPTH} levels` })
      }
      const bytes = yield* fetchVerified(cid)
      const node = yield* Effect.try({
        try: () => decodeFileNode(cid.toString(), bytes),
        catch: (
          cause
        ) => (cause instanceof CidError ? cause : new CidError({ cid: cid.toString(), reason: String(cause) }))
      })
      const size = node.blockSizes.reduce((sum, blockSize) => sum + blockSize, 0)
      if (expectedSize !== undefined && size !== expectedSize) {
        return yield* new CidError({
          cid: cid.toString(),
          reason: `holds ${size} bytes, its parent says ${expectedSize}`
        })
      }
      const children = yield* Effect.forEach(
        node.links,
        (link, index) => resolveChild(link, node.blockSizes[index]!, depth + 1),
        { concurrency: FETCH_CONCURRENCY }
      )
      return {
        size,
        leaves: children.flatMap((child) => child.leaves),
        nodes: [{ cid: cid.toString(), bytes }, ...children.flatMap((child) => child.nodes)]
      }
    })

  const resolveChild = (cid: CID, blockSize: number, depth: number): Effect.Effect<Subtree, CidError | E, R> => {
    const refuse = (reason: string) => Effect.fail(new CidError({ cid: cid.toString(), reason }))
    if (cid.multihash.code !== SHA2_256) {
      return refuse(`is hashed with multihash 0x${cid.multihash.code.toString(16)}, not sha2-256`)
    }
    if (cid.code === dagPb.code) return resolveNode(cid, blockSize, depth)
    if (cid.code !== raw.code) return refuse(`has codec 0x${cid.code.toString(16)}, not a raw leaf or dag-pb node`)
    if (blockSize > CHUNK_SIZE) return refuse(`is a leaf of ${blockSize} bytes, more than ${CHUNK_SIZE}`)
    return Effect.succeed({ size: blockSize, leaves: [{ cid, length: blockSize }], nodes: [] })
  }

  return Effect.gen(function*() {
    const rootCid = parseCid(root)
    if (rootCid === undefined) return yield* new CidError({ cid: root, reason: "is not a valid CID" })
    if (rootCid.multihash.code !== SHA2_256) {
      return yield* new CidError({
        cid: root,
        reason: `is hashed with multihash 0x${rootCid.multihash.code.toString(16)}, not sha2-256`
      })
    }
    if (rootCid.code === raw.code) {
      const bytes = yield* fetchVerified(rootCid)
      const cid = rootCid.toString()
      return {
        root: cid,
        size: bytes.length,
        leaves: [{ cid, offset: 0, length: bytes.length, sha256: rootCid.multihash.digest.slice() }],
        nodes: []
      }
    }
    if (rootCid.code !== dagPb.code) {
      return yield* new CidError({
        cid: root,
        reason: `has codec 0x${rootCid.code.toString(16)}, not a raw leaf or dag-pb node`
      })
    }
    const tree = yield* resolveNode(rootCid, undefined, 0)
    let offset = 0
    const leaves = tree.leaves.map((leaf): Leaf => {
      const placed = {
        cid: leaf.cid.toString(),
        offset,
        length: leaf.length,
        sha256: leaf.cid.multihash.digest.slice()
      }
      offset += leaf.length
      return placed
    })
    return { root: rootCid.toString(), size: tree.size, leaves, nodes: tree.nodes }
  })
}
