/**
 * The charter's settings as a node's environment gives them, checked when read (before any command
 * runs, so this module stays free of the journal and the actors: Charter.ts founds the charter).
 */
import { publicKeyOfPeerId } from "../net/PeerBook.js"
import type { NodeSettings } from "./NodeConfig.js"

export type CharterSettings = Pick<NodeSettings, "network" | "operators" | "operatorThreshold" | "sequencer">

/**
 * Reads `EDGE_NET_NETWORK`, `EDGE_NET_OPERATORS` (comma-separated public keys),
 * `EDGE_NET_OPERATOR_THRESHOLD` and `EDGE_NET_SEQUENCER` (`self`, a public key or a peer id); a
 * malformed value is an error that names the variable.
 */
export const parseCharterSettings = (environment: Readonly<Record<string, string | undefined>>) => {
  const network = environment["EDGE_NET_NETWORK"]?.trim()
  const operators = environment["EDGE_NET_OPERATORS"]?.split(",").map((key) => key.trim()).filter((key) => key !== "")
  const threshold = environment["EDGE_NET_OPERATOR_THRESHOLD"]?.trim()
  const sequencer = sequencerOf(environment["EDGE_NET_SEQUENCER"]?.trim())
  if (network !== undefined && !/^[a-z0-9][a-z0-9._-]{0,63}$/.test(network)) {
    throw new Error(`EDGE_NET_NETWORK: "${network}" is not a network id (1-64 lowercase letters, digits or . _ -)`)
  }
  for (const key of operators ?? []) {
    if (!/^[0-9a-f]{64}$/.test(key)) {
      throw new Error(`EDGE_NET_OPERATORS: "${key}" is not an Ed25519 public key (64 lowercase hex digits)`)
    }
  }
  if (threshold !== undefined && !/^[1-9][0-9]{0,1}$/.test(threshold)) {
    throw new Error(`EDGE_NET_OPERATOR_THRESHOLD: "${threshold}" is not a whole number from 1 to 99`)
  }
  return {
    ...(network === undefined || network === "" ? {} : { network }),
    ...(operators === undefined || operators.length === 0 ? {} : { operators }),
    ...(threshold === undefined || threshold === "" ? {} : { operatorThreshold: Number(threshold) }),
    ...(sequencer === undefined ? {} : { sequencer })
  } satisfies CharterSettings
}

/** `self`, a node's public key, or its peer id (which names the key): the public key or `self`. */
const sequencerOf = (text: string | undefined): string | undefined => {
  if (text === undefined || text === "") return undefined
  if (text === "self" || /^[0-9a-f]{64}$/.test(text)) return text
  const fromPeerId = publicKeyOfPeerId(text)
  if (fromPeerId !== undefined) return fromPeerId
  throw new Error(
    `EDGE_NET_SEQUENCER: "${text}" is not self, an Ed25519 public key (64 lowercase hex digits) or an Ed25519 peer id`
  )
}
