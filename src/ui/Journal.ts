/**
 * What the page keeps of the journal it follows: the newest events for the feed, and the series
 * derived from all it has seen (events per second, the pool's price and reserves), plus counters that
 * tell each panel when its subsystem changed so it reads again.
 */
import type { JournalEvent } from "./Client.js"
import { at, num } from "./Json.js"

export const FEED_SIZE = 200
/** Seconds of history the event-rate chart shows. */
export const RATE_WINDOW = 120

export interface PricePoint {
  readonly time: number
  readonly price: number
  readonly compute: number
  readonly ruv: number
}

export interface JournalView {
  readonly feed: ReadonlyArray<JournalEvent>
  readonly head: number
  /** Events per second by the second they were recorded (seconds since the epoch). */
  readonly rate: ReadonlyMap<number, number>
  readonly prices: ReadonlyArray<PricePoint>
  /** Auctions seen in the log, newest first. */
  readonly auctions: ReadonlyArray<string>
  /** How many events each stream category had: panels read again when theirs moves. */
  readonly changes: Readonly<Record<string, number>>
}

export const emptyJournal: JournalView = { feed: [], head: 0, rate: new Map(), prices: [], auctions: [], changes: {} }

export const categoryOf = (streamId: string) => {
  const dash = streamId.indexOf("-")
  return dash < 0 ? streamId : streamId.slice(0, dash)
}

const entityOf = (streamId: string) => streamId.slice(streamId.indexOf("-") + 1)

/** The pool's pricing reserves after a swap, as its events record them (amounts are decimal strings). */
const pricePoint = (event: JournalEvent): PricePoint | undefined => {
  if (event.eventType !== "ComputeBought" && event.eventType !== "ComputeSold") return undefined
  const compute = num(at(event.payload, "reserves", "compute"))
  const ruv = num(at(event.payload, "reserves", "ruv"))
  if (!(compute > 0) || !Number.isFinite(ruv)) return undefined
  return { time: Date.parse(event.recordedAt) / 1000, price: ruv / compute, compute, ruv }
}

/** The view after `events` (in log order) were appended to it. */
export const appendEvents = (view: JournalView, events: ReadonlyArray<JournalEvent>): JournalView => {
  if (events.length === 0) return view
  const rate = new Map(view.rate)
  const prices = [...view.prices]
  const auctions = [...view.auctions]
  const changes = { ...view.changes }
  let head = view.head
  for (const event of events) {
    if (event.position <= head) continue
    head = event.position
    const second = Math.floor(Date.parse(event.recordedAt) / 1000)
    rate.set(second, (rate.get(second) ?? 0) + 1)
    const point = pricePoint(event)
    if (point !== undefined) prices.push(point)
    const category = categoryOf(event.streamId)
    changes[category] = (changes[category] ?? 0) + 1
    if (category === "Auction") {
      const id = entityOf(event.streamId)
      const known = auctions.indexOf(id)
      if (known !== -1) auctions.splice(known, 1)
      auctions.unshift(id)
    }
  }
  // Only the rate chart's window is kept.
  const newest = Math.max(...rate.keys())
  for (const second of rate.keys()) if (second < newest - RATE_WINDOW) rate.delete(second)
  const feed = [...events.filter((event) => event.position > view.head).reverse(), ...view.feed].slice(0, FEED_SIZE)
  return { feed, head, rate, prices: prices.slice(-2000), auctions: auctions.slice(0, 50), changes }
}

/** The rate chart's series: one point per second of the window ending now, zeros where nothing happened. */
export const rateSeries = (rate: ReadonlyMap<number, number>, now: number) => {
  const end = Math.floor(now / 1000)
  const times: Array<number> = []
  const values: Array<number> = []
  for (let second = end - RATE_WINDOW; second <= end; second++) {
    times.push(second)
    values.push(rate.get(second) ?? 0)
  }
  return { times, values }
}
