/** Genesis settings as a node's environment gives them (`EDGE_NET_GENESIS`), checked when read. */
import { PARAMETERS } from "../actors/economy/ParameterCatalogue.js"

/** Parameter name to value; the names are checked when parsed. */
export type GenesisParameters = Readonly<Record<string, bigint>>

/** Parses `name=value,name=value` (the `EDGE_NET_GENESIS` variable); an unknown name or bad value is an error. */
export const parseGenesisParameters = (text: string | undefined): GenesisParameters => {
  const settings: Record<string, bigint> = {}
  for (const item of (text ?? "").split(",").map((part) => part.trim()).filter((part) => part !== "")) {
    const [name = "", value = ""] = item.split("=").map((part) => part.trim())
    if (!Object.hasOwn(PARAMETERS, name)) throw new Error(`EDGE_NET_GENESIS: unknown parameter "${name}"`)
    if (!/^[0-9]+$/.test(value)) throw new Error(`EDGE_NET_GENESIS: ${name} needs a whole number, got "${value}"`)
    settings[name] = BigInt(value)
  }
  return settings
}
