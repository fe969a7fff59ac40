import { describe, expect, it } from "@effect/vitest"
import { CarReader } from "@ipld/car"
import * as dagPb from "@ipld/dag-pb"
import { Data, Effect } from "effect"
import { UnixFS } from "ipfs-unixfs"
import { importBytes } from "ipfs-unixfs-importer"
import { fixedSize } from "ipfs-unixfs-importer/chunker"
import { balanced } from "ipfs-unixfs-importer/layout"
import { CID } from "multiformats/cid"
import * as raw from "multiformats/codecs/raw"
import { create as createDigest } from "multiformats/hashes/digest"
import { sha512 } from "multiformats/hashes/sha2"
import { createHash } from "node:crypto"
import { carBlock, carBlocksInOrder, carHeader, type CarOrderOptions } from "../../src/content/Car.js"
import {
  CHUNK_SIZE,
  CidError,
  layoutOf,
  parseCid,
  resolveLeaves,
  UnixFsBuilder,
  type UnixFsLayout,
  verifyBlock
} from "../../src/content/UnixFs.js"

const EMPTY_FILE_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
const MiB = 1024 * 1024

/** Deterministic bytes (xorshift32), so no two chunks repeat and a failure reproduces. */
const pseudoRandomBytes = (length: number, seed: number): Uint8Array => {
  const words = new Uint32Array(Math.ceil(length / 4))
  let state = seed | 1
  for (let index = 0; index < words.length; index++) {
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    words[index] = state
  }
  return new Uint8Array(words.buffer, 0, length)
}

/** Feeds the builder in awkward slice sizes, so chunks straddle slices in every way. */
const layoutInSlices = (bytes: Uint8Array): UnixFsLayout => {
  const sliceSizes = [1, 7, 100_000, CHUNK_SIZE + 3, 2 * CHUNK_SIZE, 0, 523_001]
  const builder = UnixFsBuilder.make()
  for (let position = 0, turn = 0; position < bytes.length; turn++) {
    const sliceSize = sliceSizes[turn % sliceSizes.length]!
    builder.update(bytes.subarray(position, position + sliceSize))
    position += sliceSize
  }
  return builder.finish()
}

/** What kubo's settings give through the reference importer: the root and every block it wrote. */
const referenceImport = async (bytes: Uint8Array) => {
  const blocks = new Map<string, Uint8Array>()
  const blockstore = {
    put: (cid: CID, block: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>) => {
      if (!(block instanceof Uint8Array)) throw new Error("the importer wrote a streamed block")
      blocks.set(cid.toString(), block)
      return cid
    }
  }
  const result = await importBytes(bytes, blockstore, {
    cidVersion: 1,
    rawLeaves: true,
    chunker: fixedSize({ chunkSize: CHUNK_SIZE }),
    layout: balanced({ maxChildrenPerNode: 174 }),
    reduceSingleLeafToSelf: true
  })
  return { root: result.cid.toString(), blocks }
}

const blocksOf = (layout: UnixFsLayout, bytes: Uint8Array): Map<string, Uint8Array> =>
  new Map([
    ...layout.leaves.map((leaf) => [leaf.cid, bytes.subarray(leaf.offset, leaf.offset + leaf.length)] as const),
    ...layout.nodes.map((node) => [node.cid, node.bytes] as const)
  ])

const sameBytes = (left: Uint8Array, right: Uint8Array): boolean =>
  Buffer.from(left.buffer, left.byteOffset, left.length).equals(right)

class MissingBlock extends Data.TaggedError("MissingBlock")<{ readonly cid: string }> {}

const getBlockFrom = (blocks: ReadonlyMap<string, Uint8Array>) => (cid: string) =>
  Effect.fromNullable(blocks.get(cid)).pipe(Effect.mapError(() => new MissingBlock({ cid })))

const sha256Cid = (codec: number, bytes: Uint8Array): CID =>
  CID.createV1(codec, createDigest(0x12, createHash("sha256").update(bytes).digest()))

/** A hand-made dag-pb node, to feed the resolver layouts we never produce. */
const handMadeNode = (unixFs: UnixFS, links: ReadonlyArray<CID>) => {
  const bytes = dagPb.encode({ Data: unixFs.marshal(), Links: links.map((Hash) => ({ Hash, Name: "", Tsize: 1 })) })
  return { cid: sha256Cid(dagPb.code, bytes).toString(), bytes }
}

const carOf = (layout: UnixFsLayout, bytes: Uint8Array, options?: CarOrderOptions): Uint8Array =>
  Buffer.concat([
    carHeader(layout.root),
    ...carBlocksInOrder(layout, options).map((entry) =>
      entry.kind === "node"
        ? carBlock(entry.cid, entry.bytes)
        : carBlock(entry.cid, bytes.subarray(entry.offset, entry.offset + entry.length))
    )
  ])

const readCar = async (car: Uint8Array) => {
  const reader = await CarReader.fromBytes(car)
  const blocks: Array<{ cid: string; bytes: Uint8Array }> = []
  // Copied out of the Buffer the CAR was concatenated into, so they compare as plain bytes.
  for await (const block of reader.blocks()) {
    blocks.push({ cid: block.cid.toString(), bytes: Uint8Array.from(block.bytes) })
  }
  return { roots: (await reader.getRoots()).map(String), blocks }
}

// The smallest file with two levels of nodes, shared by the resolver and CAR tests.
const twoLevels = pseudoRandomBytes(174 * CHUNK_SIZE + 1, 7)
const twoLevelLayout = layoutOf(twoLevels)

const cases: ReadonlyArray<{ readonly name: string; readonly bytes: () => Uint8Array }> = [
  { name: "empty", bytes: () => new Uint8Array(0) },
  { name: "1 byte", bytes: () => pseudoRandomBytes(1, 1) },
  { name: "one chunk less a byte", bytes: () => pseudoRandomBytes(CHUNK_SIZE - 1, 2) },
  { name: "exactly one chunk", bytes: () => pseudoRandomBytes(CHUNK_SIZE, 3) },
  { name: "one chunk and a byte", bytes: () => pseudoRandomBytes(CHUNK_SIZE + 1, 4) },
  { name: "3 MiB + 5", bytes: () => pseudoRandomBytes(3 * MiB + 5, 5) },
  { name: "174 chunks (one full node)", bytes: () => pseudoRandomBytes(174 * CHUNK_SIZE, 6) },
  { name: "174 chunks + 1 byte (two levels)", bytes: () => twoLevels },
  { name: "3 chunks of zeros + 1 (repeated leaves)", bytes: () => new Uint8Array(3 * CHUNK_SIZE + 1) }
]

describe("UnixFs layout", () => {
  for (const testCase of cases) {
    it(`${testCase.name}: same root and blocks as ipfs-unixfs-importer`, async () => {
      const bytes = testCase.bytes()
      const layout = layoutInSlices(bytes)
      const reference = await referenceImport(bytes)
      expect(layout.root).toBe(reference.root)
      expect(layout.size).toBe(bytes.length)
      expect(layoutOf(bytes)).toEqual(layout)

      const ours = blocksOf(layout, bytes)
      expect([...ours.keys()].sort()).toEqual([...reference.blocks.keys()].sort())
      const differing = [...reference.blocks].filter(([cid, block]) => !sameBytes(ours.get(cid)!, block)).map(([cid]) =>
        cid
      )
      expect(differing).toEqual([])

      // Leaves tile the file, and each one's sha256 is the digest inside its CID.
      let offset = 0
      for (const leaf of layout.leaves) {
        expect(leaf.offset).toBe(offset)
        expect(parseCid(leaf.cid)!.multihash.digest).toEqual(leaf.sha256)
        offset += leaf.length
      }
      expect(offset).toBe(bytes.length)
    })
  }

  it("the empty file is the sha256 of nothing as a raw leaf", () => {
    const layout = UnixFsBuilder.make().finish()
    expect(layout).toMatchObject({ root: EMPTY_FILE_CID, size: 0, nodes: [] })
    expect(layout.leaves).toHaveLength(1)
  })

  it("a single chunk is its own root; one more byte needs a node", () => {
    expect(layoutOf(pseudoRandomBytes(CHUNK_SIZE, 3)).nodes).toEqual([])
    const twoLeaves = layoutOf(pseudoRandomBytes(CHUNK_SIZE + 1, 4))
    expect(twoLeaves.nodes.map((node) => node.cid)).toEqual([twoLeaves.root])
    expect(twoLeaves.leaves.map((leaf) => leaf.length)).toEqual([CHUNK_SIZE, 1])
  })

  it("balances 174 links per node: 174 chunks fill the root, one more byte adds a level", () => {
    const full = layoutOf(pseudoRandomBytes(174 * CHUNK_SIZE, 6))
    expect(full.nodes).toHaveLength(1)
    expect(dagPb.decode(full.nodes[0]!.bytes).Links).toHaveLength(174)

    expect(twoLevelLayout.nodes.map((node) => dagPb.decode(node.bytes).Links.length)).toEqual([2, 174, 1])
  })

  it("takes no bytes after finish", () => {
    const builder = UnixFsBuilder.make()
    builder.finish()
    expect(() => builder.update(new Uint8Array(1))).toThrow()
  })

  it("verifyBlock and parseCid", async () => {
    const bytes = pseudoRandomBytes(1000, 8)
    const { root } = layoutOf(bytes)
    expect(verifyBlock(root, bytes)).toBe(true)
    expect(verifyBlock(root, bytes.subarray(1))).toBe(false)
    expect(verifyBlock("not a cid", bytes)).toBe(false)
    expect(verifyBlock(CID.createV1(raw.code, await sha512.digest(bytes)).toString(), bytes)).toBe(false)
    expect(parseCid("not a cid")).toBeUndefined()
    expect(parseCid(root)?.toString()).toBe(root)
  })
})

describe("resolveLeaves", () => {
  it.effect("walks a DAG back to the layout it was built from", () =>
    Effect.gen(function*() {
      for (const bytes of [twoLevels, pseudoRandomBytes(3 * MiB + 5, 5), pseudoRandomBytes(10, 9), new Uint8Array(0)]) {
        const layout = bytes === twoLevels ? twoLevelLayout : layoutOf(bytes)
        expect(yield* resolveLeaves(layout.root, getBlockFrom(blocksOf(layout, bytes)))).toEqual(layout)
      }
    }))

  it.effect("fetches internal nodes only, except a raw root", () =>
    Effect.gen(function*() {
      const fetched: Array<string> = []
      const blocks = blocksOf(twoLevelLayout, twoLevels)
      yield* resolveLeaves(twoLevelLayout.root, (cid) =>
        Effect.sync(() => fetched.push(cid)).pipe(Effect.zipRight(getBlockFrom(blocks)(cid))))
      expect(fetched.sort()).toEqual(
        twoLevelLayout.nodes.map((node) =>
          node.cid
        ).sort()
      )
    }))

  it.effect("refuses a tampered block, naming it", () =>
    Effect.gen(function*() {
      const blocks = blocksOf(twoLevelLayout, twoLevels)
      const victim = twoLevelLayout.nodes[1]!
      const tampered = Uint8Array.from(victim.bytes)
      tampered[tampered.length - 1]! ^= 1
      blocks.set(victim.cid, tampered)
      const error = yield* Effect.flip(resolveLeaves(twoLevelLayout.root, getBlockFrom(blocks)))
      expect(error).toBeInstanceOf(CidError)
      expect(error).toMatchObject({ cid: victim.cid })
      expect(error.message).toBe(`block ${victim.cid} does not match its CID`)
    }))

  it.effect("refuses a tampered raw root", () =>
    Effect.gen(function*() {
      const { root } = layoutOf(pseudoRandomBytes(10, 9))
      const error = yield* Effect.flip(resolveLeaves(root, () => Effect.succeed(new Uint8Array(10))))
      expect(error).toMatchObject({ _tag: "CidError", cid: root })
    }))

  it.effect("refuses CIDs hashed with anything but sha2-256, as root or as a link", () =>
    Effect.gen(function*() {
      const bytes = pseudoRandomBytes(10, 10)
      const sha512Leaf = CID.createV1(raw.code, yield* Effect.promise(async () => sha512.digest(bytes)))
      const rootError = yield* Effect.flip(resolveLeaves(sha512Leaf.toString(), () => Effect.succeed(bytes)))
      expect(rootError).toMatchObject({ _tag: "CidError", cid: sha512Leaf.toString() })
      expect(rootError.message).toContain("not sha2-256")

      const node = handMadeNode(new UnixFS({ type: "file", blockSizes: [10n] }), [sha512Leaf])
      const linkError = yield* Effect.flip(resolveLeaves(node.cid, getBlockFrom(new Map([[node.cid, node.bytes]]))))
      expect(linkError).toMatchObject({ _tag: "CidError", cid: sha512Leaf.toString() })
    }))

  it.effect("refuses what kubo's raw-leaves layout never makes", () =>
    Effect.gen(function*() {
      const leaf = sha256Cid(raw.code, pseudoRandomBytes(10, 11))
      const refusals = [
        { node: handMadeNode(new UnixFS({ type: "directory" }), [leaf]), reason: "is a UnixFS directory, not a file" },
        {
          node: handMadeNode(new UnixFS({ type: "file", data: new Uint8Array(3), blockSizes: [10n] }), [leaf]),
          reason: "carries inline file data"
        },
        {
          node: handMadeNode(new UnixFS({ type: "file", blockSizes: [10n] }), [sha256Cid(0x71, new Uint8Array(1))]),
          reason: "has codec 0x71"
        },
        {
          node: handMadeNode(new UnixFS({ type: "file", blockSizes: [10n, 5n] }), [leaf]),
          reason: "has 1 links but 2 blocksizes"
        }
      ]
      for (const { node, reason } of refusals) {
        const error = yield* Effect.flip(resolveLeaves(node.cid, getBlockFrom(new Map([[node.cid, node.bytes]]))))
        expect(error).toBeInstanceOf(CidError)
        expect(error.message).toContain(reason)
      }
    }))

  it.effect("passes getBlock's own errors through", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(resolveLeaves(twoLevelLayout.root, getBlockFrom(new Map())))
      expect(error).toEqual(new MissingBlock({ cid: twoLevelLayout.root }))
    }))

  it.effect("refuses text that is not a CID", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(resolveLeaves("bafy-nonsense", () => Effect.succeed(new Uint8Array(0))))
      expect(error.message).toBe("block bafy-nonsense is not a valid CID")
    }))
})

describe("Car", () => {
  it("streams the DAG depth first, root first, and @ipld/car reads it back block for block", async () => {
    const layout = twoLevelLayout
    const car = await readCar(carOf(layout, twoLevels))
    expect(car.roots).toEqual([layout.root])
    const expectedOrder = [
      layout.nodes[0]!.cid,
      layout.nodes[1]!.cid,
      ...layout.leaves.slice(0, 174).map((leaf) => leaf.cid),
      layout.nodes[2]!.cid,
      layout.leaves[174]!.cid
    ]
    expect(car.blocks.map((block) => block.cid)).toEqual(expectedOrder)
    const store = blocksOf(layout, twoLevels)
    expect(
      car.blocks.filter((block) =>
        !verifyBlock(block.cid, block.bytes) || !sameBytes(block.bytes, store.get(block.cid)!)
      )
    ).toEqual([])
  })

  it("sends a repeated block once unless duplicates are asked for", async () => {
    const zeros = new Uint8Array(3 * CHUNK_SIZE + 1)
    const layout = layoutOf(zeros)
    const once = await readCar(carOf(layout, zeros))
    expect(once.blocks.map((block) => block.cid)).toEqual([layout.root, layout.leaves[0]!.cid, layout.leaves[3]!.cid])
    const everyLink = await readCar(carOf(layout, zeros, { duplicates: true }))
    expect(everyLink.blocks.map((block) => block.cid)).toEqual([layout.root, ...layout.leaves.map((leaf) => leaf.cid)])
  })

  it("a one-leaf file is a header and that leaf, even when empty", async () => {
    for (const bytes of [new Uint8Array(0), pseudoRandomBytes(1000, 12)]) {
      const layout = layoutOf(bytes)
      const car = await readCar(carOf(layout, bytes))
      expect(car.roots).toEqual([layout.root])
      expect(car.blocks).toEqual([{ cid: layout.root, bytes }])
    }
  })
})
