/**
 * Checks a downloaded artifact against its manifest entry before anything keeps it: its length, its
 * SHA-256 (WebCrypto, or @noble/hashes outside a secure context) and its IPFS CID as kubo lays it out.
 */
import { sha256 as portableSha256, toHex } from "../content/Sha256.js"
import { layoutOf } from "../content/UnixFs.js"

/** The fields of a manifest's artifact entry that bind its bytes. */
export interface ArtifactBinding {
  readonly size: number
  readonly sha256: string
  readonly cid: string
}

/** SHA-256 of `bytes` as lowercase hex: WebCrypto where the page has it (a secure context), else JavaScript. */
export const sha256Hex = async (bytes: Uint8Array): Promise<string> => {
  const subtle = globalThis.crypto?.subtle
  if (subtle === undefined) return toHex(portableSha256(bytes))
  // A copy into a plain ArrayBuffer: WebCrypto refuses views of shared or resizable memory.
  const digest = await subtle.digest("SHA-256", bytes.slice().buffer)
  return toHex(new Uint8Array(digest))
}

/** What is wrong with `bytes` as the artifact `binding` describes, or undefined when they match it. */
export const artifactProblem = async (bytes: Uint8Array, binding: ArtifactBinding): Promise<string | undefined> => {
  if (bytes.length !== binding.size) return `it is ${bytes.length} bytes, the manifest says ${binding.size}`
  const digest = await sha256Hex(bytes)
  if (digest !== binding.sha256) return `its SHA-256 is ${digest}, the manifest says ${binding.sha256}`
  const cid = layoutOf(bytes).root
  if (cid !== binding.cid) return `its CID is ${cid}, the manifest says ${binding.cid}`
  return undefined
}
