/**
 * CARv1 framing for IPFS trustless gateway responses (`?format=car`): a header naming the root, then one
 * length-prefixed section per block, so a server can stream a file's DAG without holding the file.
 */
import { close, createWriter, headerLength } from "@ipld/car/buffer-writer"
import * as dagPb from "@ipld/dag-pb"
import { varint } from "multiformats"
import { CID } from "multiformats/cid"
import * as raw from "multiformats/codecs/raw"
import type { UnixFsLayout } from "./UnixFs.js"

/** The CAR header `{ roots: [root], version: 1 }` (dag-cbor) with its varint length prefix. */
export const carHeader = (root: string): Uint8Array => {
  const roots = [CID.parse(root)]
  // @ipld/car encodes the header itself; sizing the buffer exactly makes `close` return just the header.
  return close(createWriter(new ArrayBuffer(headerLength({ roots })), { roots }))
}

/**
 * The start of a block's section: varint(length of CID + block) then the CID. A server writes this and
 * then the block's bytes, straight from the blob file.
 */
export const carSectionPrefix = (cid: string, blockLength: number): Uint8Array => {
  const cidBytes = CID.parse(cid).bytes
  const sectionLength = cidBytes.length + blockLength
  const lengthBytes = varint.encodingLength(sectionLength)
  const prefix = new Uint8Array(lengthBytes + cidBytes.length)
  varint.encodeTo(sectionLength, prefix, 0)
  prefix.set(cidBytes, lengthBytes)
  return prefix
}

/** One whole CAR section: prefix and block bytes. */
export const carBlock = (cid: string, bytes: Uint8Array): Uint8Array => {
  const prefix = carSectionPrefix(cid, bytes.length)
  const section = new Uint8Array(prefix.length + bytes.length)
  section.set(prefix, 0)
  section.set(bytes, prefix.length)
  return section
}

/** A block to send: an internal node's bytes, or where a leaf's bytes lie in the blob file. */
export type CarEntry =
  | { readonly cid: string; readonly kind: "node"; readonly bytes: Uint8Array }
  | { readonly cid: string; readonly kind: "leaf"; readonly offset: number; readonly length: number }

export interface CarOrderOptions {
  /**
   * Send a block again each time the DAG links to it (`dups=y`). Off by default, as on trustless
   * gateways (`dups=n`): a file of repeated chunks (zeros, say) then sends each distinct block once.
   */
  readonly duplicates?: boolean
}

/**
 * The blocks of a layout in depth-first order, root first, children left to right: what a trustless
 * gateway sends for `dag-scope=all&order=dfs`. Leaves come in file order along the way.
 */
export const carBlocksInOrder = (layout: UnixFsLayout, options: CarOrderOptions = {}): Array<CarEntry> => {
  const nodes = new Map(layout.nodes.map((node) => [node.cid, node.bytes]))
  const leaves = new Map<string, { readonly offset: number; readonly length: number }>()
  for (const leaf of layout.leaves) if (!leaves.has(leaf.cid)) leaves.set(leaf.cid, leaf)
  const sent = new Set<string>()
  const entries: Array<CarEntry> = []

  const visit = (cid: CID): void => {
    const key = cid.toString()
    if (options.duplicates !== true && sent.has(key)) return
    sent.add(key)
    if (cid.code === raw.code) {
      const leaf = leaves.get(key)
      if (leaf === undefined) throw new Error(`layout ${layout.root} links leaf ${key} but does not list it`)
      entries.push({ cid: key, kind: "leaf", offset: leaf.offset, length: leaf.length })
      return
    }
    const bytes = nodes.get(key)
    if (bytes === undefined) throw new Error(`layout ${layout.root} links node ${key} but does not list it`)
    entries.push({ cid: key, kind: "node", bytes })
    for (const link of dagPb.decode(bytes).Links) visit(link.Hash)
  }

  visit(CID.parse(layout.root))
  return entries
}
