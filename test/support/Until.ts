/** Polls `probe` every 250 ms until it gives a value; fails after `timeoutMs`, naming what it waited for and the last error. */
export const until = async <A>(what: string, probe: () => Promise<A | undefined>, timeoutMs = 60_000): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (true) {
    const value = await probe().catch((error) => void (last = error))
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what} (${String(last)})`)
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}
