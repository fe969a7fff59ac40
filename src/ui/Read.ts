/** A read of the node as a hook: its last value, or the one line of what went wrong; read again when `keys` change. */
import { useEffect, useState } from "preact/hooks"
import type { Json } from "./Json.js"

export interface Read {
  readonly value: Json
  readonly error: string | undefined
  readonly loading: boolean
}

export const useRead = (read: () => Promise<Json>, keys: ReadonlyArray<unknown>): Read => {
  const [state, setState] = useState<Read>({ value: undefined, error: undefined, loading: true })
  useEffect(() => {
    let current = true
    read().then(
      (value) => current && setState({ value, error: undefined, loading: false }),
      (error: unknown) =>
        current && setState((previous) => ({
          ...previous,
          error: error instanceof Error ? error.message : String(error),
          loading: false
        }))
    )
    return () => {
      current = false
    }
  }, keys)
  return state
}
