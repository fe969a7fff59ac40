/**
 * An auditor that follows a node's events and checks every task auction from the log alone.
 *
 *   node --import tsx examples/follow-auctions.ts NODE_URL [AUCTIONS]
 *
 * It reads the node's journal from the start (`GET /v1/events`), keeps each auction's revealed bids,
 * and when an auction resolves checks what the node decided against what the rules say: every
 * revealed price opens its sealed commitment, the lowest price wins (earliest commit on a tie), and
 * the winner is paid the second-lowest price (its own when it bid alone). It prints its verdict with
 * the node's own explanation (the `AuditExplain` RPC, a read that needs no key), and stops after
 * AUCTIONS auctions (default: follows for ever).
 */
import { RpcClient } from "@effect/rpc"
import { commitmentOf } from "edge-net/economy"
import { httpProtocol, NodeApiRpcs } from "edge-net/rpc"
import { Effect, Schedule } from "effect"

const [url, limitText] = process.argv.slice(2)
if (url === undefined) {
  console.error("usage: follow-auctions.ts NODE_URL [AUCTIONS]")
  process.exit(2)
}
const limit = limitText === undefined ? Infinity : Number(limitText)

interface StoredEvent {
  readonly position: number
  readonly streamId: string
  readonly eventType: string
  readonly payload: Record<string, unknown>
}

interface Commit {
  readonly commitment: string
  readonly sequence: number
}

/** What the feed told us of one auction so far. */
interface Seen {
  readonly commits: Map<string, Commit>
  readonly revealed: Map<string, { readonly price: bigint; readonly salt: string }>
}

const page = (from: number) =>
  Effect.tryPromise(async () => {
    const response = await fetch(`${url}/v1/events?from=${from}&limit=1000`)
    if (!response.ok) throw new Error(`${url}/v1/events answered ${response.status}`)
    return (await response.json()) as { events: Array<StoredEvent>; next: number }
  })

/** The rules' verdict on a resolution, from the auction's own events. */
const check = (auctionId: string, seen: Seen, resolved: Record<string, unknown>): Array<string> => {
  const problems: Array<string> = []
  for (const [bidder, { price, salt }] of seen.revealed) {
    if (commitmentOf({ auctionId, bidder, price, salt }) !== seen.commits.get(bidder)?.commitment) {
      problems.push(`${bidder}'s revealed price ${price} does not open its commitment`)
    }
  }
  const ranked = [...seen.revealed].map(([bidder, { price }]) => ({
    bidder,
    price,
    sequence: seen.commits.get(bidder)?.sequence ?? Infinity
  })).sort((a, b) => (a.price < b.price ? -1 : a.price > b.price ? 1 : a.sequence - b.sequence))
  const winner = ranked[0]
  const pays = (ranked[1] ?? ranked[0])?.price
  if (winner?.bidder !== resolved.winner) {
    problems.push(`the node named ${String(resolved.winner)} the winner; the rules name ${winner?.bidder}`)
  }
  if (pays === undefined || pays !== BigInt(String(resolved.price))) {
    problems.push(`the node pays ${String(resolved.price)}; the rules pay ${pays}`)
  }
  return problems
}

const follow = Effect.gen(function*() {
  const rpc = yield* RpcClient.make(NodeApiRpcs)
  const auctions = new Map<string, Seen>()
  let from = 1
  let audited = 0
  while (audited < limit) {
    const { events, next } = yield* page(from).pipe(
      Effect.retry(Schedule.spaced("500 millis").pipe(Schedule.upTo("30 seconds")))
    )
    from = next
    for (const event of events) {
      if (!event.streamId.startsWith("Auction-")) continue
      const auctionId = event.streamId.slice("Auction-".length)
      const seen = auctions.get(auctionId) ?? { commits: new Map(), revealed: new Map() }
      auctions.set(auctionId, seen)
      const { payload } = event
      if (event.eventType === "BidCommitted") {
        seen.commits.set(String(payload.bidder), {
          commitment: String(payload.commitment),
          sequence: Number(payload.sequence)
        })
      } else if (event.eventType === "BidRevealed") {
        seen.revealed.set(String(payload.bidder), { price: BigInt(String(payload.price)), salt: String(payload.salt) })
      } else if (event.eventType === "AuctionResolved") {
        const problems = check(auctionId, seen, payload)
        const explained = yield* rpc.AuditExplain({ kind: "auction", id: auctionId })
        console.log(
          `auction ${auctionId} at position ${event.position}: ${
            problems.length === 0 ? "the rules agree" : `DISAGREES: ${problems.join("; ")}`
          } (winner ${String(payload.winner)}, paid ${String(payload.price)}, ${seen.revealed.size} revealed bids)`
        )
        console.log(`  the node explains: ${explained.why}`)
        audited++
        if (audited >= limit) break
      }
    }
    if (events.length === 0) yield* Effect.sleep("200 millis")
  }
})

Effect.runPromise(Effect.scoped(follow).pipe(Effect.provide(httpProtocol(url)))).catch((error: unknown) => {
  console.error(String(error))
  process.exit(1)
})
