/**
 * Why an auction ended as it did, told from its own events alone: the sealed commitments, the
 * revealed prices, the winner (lowest price), what it is paid (second-lowest), the parameters in force.
 */
import { Schema } from "effect"
import { AuctionEvent } from "./TaskAuction.js"

export interface AuctionFacts {
  readonly poster: string | null
  readonly commitments: ReadonlyArray<
    { readonly bidder: string; readonly commitment: string; readonly deposit: bigint }
  >
  readonly reveals: ReadonlyArray<{ readonly bidder: string; readonly price: bigint }>
  readonly unrevealed: ReadonlyArray<string>
  readonly winner: string | null
  readonly price: bigint | null
  readonly outcome: string
  readonly parameters: {
    readonly bidDepositRuv: bigint
    readonly parametersVersion: number
    readonly minBids: number
    readonly maxPrice: bigint
  } | null
}

const decodeEvent = Schema.decodeUnknownSync(AuctionEvent)

/** Folds the auction's stored payloads (in order) into the facts and a one-paragraph explanation. */
export const explainAuction = (
  auctionId: string,
  payloads: ReadonlyArray<unknown>
): { readonly facts: AuctionFacts; readonly why: string } => {
  let poster: string | null = null
  let parameters: AuctionFacts["parameters"] = null
  const commitments: Array<AuctionFacts["commitments"][number]> = []
  const reveals: Array<AuctionFacts["reveals"][number]> = []
  let winner: string | null = null
  let price: bigint | null = null
  let outcome = "open"
  let ending = ""
  for (const payload of payloads) {
    const event = decodeEvent(payload)
    switch (event._tag) {
      case "AuctionOpened":
        poster = event.poster
        parameters = {
          bidDepositRuv: event.bidDepositRuv,
          parametersVersion: event.parametersVersion,
          minBids: event.minBids,
          maxPrice: event.maxPrice
        }
        break
      case "BidCommitted":
        commitments.push({ bidder: event.bidder, commitment: event.commitment, deposit: event.deposit })
        break
      case "BidRevealed":
        reveals.push({ bidder: event.bidder, price: event.price })
        break
      case "AuctionResolved":
        winner = event.winner
        price = event.price
        outcome = "resolved"
        parameters = event.parameters
        break
      case "AuctionCancelled":
        outcome = "cancelled"
        ending = ` It was cancelled: ${event.reason}.`
        parameters = event.parameters
        break
      case "LeaseCompleted":
        outcome = "completed"
        ending = ` The poster ${event.by} accepted the result: ${event.winner} was paid ${event.price} rUv.`
        break
      case "LeaseFailed":
        outcome = "failed"
        ending =
          ` The lease failed (${event.reason}, reported by ${event.by}): the ${event.price} rUv returned to the poster.`
        break
    }
  }
  const revealed = new Set(reveals.map((reveal) => reveal.bidder))
  const unrevealed = commitments.filter((commitment) => !revealed.has(commitment.bidder)).map((commitment) =>
    commitment.bidder
  )
  const ranked = [...reveals].sort((a, b) => (a.price < b.price ? -1 : a.price > b.price ? 1 : 0))
  const sentences = [
    `Auction ${auctionId}${poster === null ? "" : ` posted by ${poster}`}` +
    (parameters === null
      ? "."
      : ` (max price ${parameters.maxPrice} rUv, at least ${parameters.minBids} revealed bid(s), bid deposit ${parameters.bidDepositRuv} rUv from market parameters version ${parameters.parametersVersion}).`),
    commitments.length === 0
      ? "No sealed bid was committed."
      : `${commitments.length} sealed bid(s) were committed: ${
        commitments.map((c) => `${c.bidder} (${c.commitment.slice(0, 12)}…)`).join(", ")
      }.`,
    reveals.length === 0
      ? "No bid was revealed."
      : `Revealed prices: ${ranked.map((r) => `${r.bidder} ${r.price} rUv`).join(", ")}${
        unrevealed.length > 0 ? `; never revealed (deposit forfeited): ${unrevealed.join(", ")}` : ""
      }.`,
    winner === null || price === null
      ? ""
      : `The winner is ${winner}, the lowest revealed price (${ranked[0]?.price} rUv); it is paid ${price} rUv, ` +
        (ranked.length > 1
          ? `the second-lowest revealed price (second price).`
          : "its own price, as the only revealed bid.")
  ]
  return {
    facts: { poster, commitments, reveals, unrevealed, winner, price, outcome, parameters },
    why: (sentences.filter((sentence) => sentence !== "").join(" ") + ending).trim()
  }
}
