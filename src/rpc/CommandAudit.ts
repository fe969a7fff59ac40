/**
 * The audit of authorization: every signed command stored in the journal must verify, name this
 * network and satisfy the authority its contract declares; and every debit, hold, stake, vote, bid
 * and proposal of an ordinary account must come from a command its owner signed (directly, or as a
 * consequence of one: followed through causation ids, or, for an auction's lease hold, the poster's
 * signed AuctionOpen). The node that ordered the commands cannot
 * forge one, so a replayer who runs this trusts no node.
 */
import { Context, Effect, Option, Schema } from "effect"
import { leaseHoldIdOf } from "../actors/market/TaskAuction.js"
import { NetworkCharter } from "../actors/network/CharterService.js"
import { Authority } from "../domain/CommandAuthority.js"
import { accountIdOf } from "../domain/Ed25519.js"
import { streamCategory, streamEntityId } from "../domain/Ids.js"
import { jsonDecoderSync, JsonObject } from "../domain/JsonText.js"
import { StoredCommand, validSigners } from "../domain/SignedCommand.js"
import type { StoredRecord } from "../events/Envelope.js"
import { ForkProof, forkProofValid } from "../events/ForkProof.js"
import { Journal } from "../events/Journal.js"
import { NodeApiRpcs } from "./NodeApiRpcs.js"

export interface CommandAuditReport {
  readonly commandsChecked: number
  readonly eventsRequiringOwner: number
  readonly firstBadPosition: number | null
  readonly problem: string | null
}

/** System accounts (`stake:…`, `pool:…`, `escrow:…`, `treasury`) are moved by their subsystems, never by a key. */
const isSystemAccount = (account: string) => account.includes(":") || account === "treasury"

/**
 * Who must have signed an event: the account it spends or acts for, or undefined when the event is a
 * subsystem's own consequence (a credit, a settlement) that needs no signature of its own.
 */
const decodePayload = jsonDecoderSync(JsonObject)

const ownerOf = (record: StoredRecord, payload: () => Record<string, unknown>): string | undefined => {
  const category = streamCategory(record.streamId)
  const entity = streamEntityId(record.streamId)
  switch (`${category}/${record.eventType}`) {
    case "Account/Debited":
    case "Account/Held":
      return isSystemAccount(entity) ? undefined : entity
    case "Stake/Staked":
    case "Stake/Unbonding":
      return isSystemAccount(entity) ? undefined : entity
    case "Proposal/ProposalCreated":
      return String(payload()["proposer"])
    case "Proposal/VoteCast":
      return String(payload()["voter"])
    case "Auction/BidCommitted":
    case "Auction/BidRevealed":
      return String(payload()["bidder"])
    default:
      return undefined
  }
}

const decodeStored = Schema.decodeUnknownEither(Schema.parseJson(StoredCommand))
const decodeProof = Schema.decodeUnknownEither(ForkProof)
const proofHolds = (proof: unknown) => {
  const decoded = decodeProof(proof)
  return decoded._tag === "Right" && forkProofValid(decoded.right)
}
const PAGE = 4096

export const auditCommands = Effect.gen(function*() {
  const journal = yield* Journal
  const charter = yield* NetworkCharter
  const terms = Option.getOrUndefined(yield* charter.terms())
  // Per stored command text: the account of its signer, or the problem with it (each text checked once).
  const checked = new Map<
    string,
    { readonly signerAccount: string; readonly operator: boolean } | { readonly problem: string }
  >()
  // Positions of events that carry a command, with its signer's account: where causation chains end.
  const authorizedAt = new Map<number, { readonly signerAccount: string; readonly operator: boolean }>()
  let commandsChecked = 0
  let eventsRequiringOwner = 0

  const check = (text: string) => {
    const known = checked.get(text)
    if (known !== undefined) return known
    const result = ((): { signerAccount: string; operator: boolean } | { problem: string } => {
      const decoded = decodeStored(text)
      if (decoded._tag === "Left") return { problem: "a stored command is not a signed command" }
      const { auth, command, payload } = decoded.right
      commandsChecked++
      const signers = validSigners(command, payload, auth)
      if (signers.length === 0) {
        return { problem: `${command} ${auth.id}: the signature of ${auth.signer} does not verify` }
      }
      if (terms !== undefined && auth.network !== terms.network) {
        return { problem: `${command} ${auth.id} was signed for network ${auth.network}` }
      }
      const rpc = NodeApiRpcs.requests.get(command)
      if (rpc === undefined) return { problem: `${command} ${auth.id}: no such command` }
      const rule = Context.getOption(rpc.annotations, Authority)
      const signerAccount = accountIdOf(auth.signer)
      const fields = payload as Record<string, unknown>
      const operatorKeys = terms === undefined ? [] : signers.filter((key) => terms.operators.includes(key))
      const operator = terms !== undefined && operatorKeys.length >= terms.threshold
      if (Option.isSome(rule)) {
        for (const field of rule.value.owners) {
          if (fields[field] !== signerAccount) {
            return { problem: `${command} ${auth.id}: ${field} ${String(fields[field])} is not the signer's account` }
          }
        }
        if (rule.value.operator && !operator) {
          return { problem: `${command} ${auth.id}: not signed by the operators named at genesis` }
        }
      }
      // A slash on a fork proof is authorized by the proof, not the signer: check the proof again.
      if (command === "ReportEquivocation" && !proofHolds(fields["proof"])) {
        return { problem: `${command} ${auth.id}: its fork proof does not show two histories signed by one key` }
      }
      return { signerAccount, operator }
    })()
    checked.set(text, result)
    return result
  }

  // Follows `…@<position>` causation ids back to an event that carries a command.
  const authorizerOf = (record: StoredRecord, byPosition: (position: number) => StoredRecord | undefined) => {
    let current: StoredRecord | undefined = record
    for (let hops = 0; current !== undefined && hops < 16; hops++) {
      const found = authorizedAt.get(current.position)
      if (found !== undefined) return found
      const cause = /@(\d+)$/.exec(current.causationId ?? "")
      if (cause === null) return undefined
      const position = Number(cause[1])
      const direct = authorizedAt.get(position)
      if (direct !== undefined) return direct
      current = byPosition(position)
    }
    return undefined
  }

  // A lease hold on an auction's poster is the consequence of the poster's signed AuctionOpen, whose
  // maxPrice bounds it: whoever resolved the auction (anyone may), and whether the market service or its
  // settlement policy placed the hold, the poster authorized it when opening. By lease hold id.
  const leases = new Map<string, { readonly poster: string; readonly maxPrice: bigint }>()
  const leaseAuthorized = (record: StoredRecord, owner: string, payload: Record<string, unknown>) => {
    if (record.eventType !== "Held") return false
    const lease = leases.get(String(payload["holdId"]))
    return lease !== undefined && lease.poster === owner && BigInt(String(payload["amount"])) <= lease.maxPrice
  }

  // Records without a command are kept only while a later event might name them as its cause.
  const recent = new Map<number, StoredRecord>()
  let position = 1
  while (true) {
    const page = yield* journal.readRecords(position, PAGE)
    for (const record of page) {
      recent.set(record.position, record)
      if (recent.size > 65_536) recent.delete(recent.keys().next().value as number)
      if (record.authorizationText !== null) {
        const verdict = check(record.authorizationText)
        if ("problem" in verdict) return bad(record.position, verdict.problem)
        authorizedAt.set(record.position, verdict)
      }
      let parsed: Record<string, unknown> | undefined
      const payload = () => (parsed ??= decodePayload(record.payloadText, `event ${record.position}`))
      if (record.eventType === "AuctionOpened" && authorizedAt.has(record.position)) {
        const opened = payload()
        leases.set(leaseHoldIdOf(streamEntityId(record.streamId)), {
          poster: String(opened["poster"]),
          maxPrice: BigInt(String(opened["maxPrice"]))
        })
      }
      const owner = ownerOf(record, payload)
      if (owner === undefined) continue
      eventsRequiringOwner++
      if (leaseAuthorized(record, owner, payload())) continue
      const authorizer = authorizerOf(record, (at) => recent.get(at))
      if (authorizer === undefined) {
        return bad(record.position, `${record.eventType} on ${record.streamId} was not authorized by a signed command`)
      }
      if (authorizer.signerAccount !== owner && !authorizer.operator) {
        return bad(
          record.position,
          `${record.eventType} on ${record.streamId} was signed by ${authorizer.signerAccount}, not by its owner ${owner}`
        )
      }
    }
    if (page.length < PAGE) break
    position = page[page.length - 1]!.position + 1
  }
  return { commandsChecked, eventsRequiringOwner, firstBadPosition: null, problem: null } satisfies CommandAuditReport

  function bad(at: number, problem: string): CommandAuditReport {
    return { commandsChecked, eventsRequiringOwner, firstBadPosition: at, problem }
  }
}).pipe(Effect.withSpan("CommandAudit.auditCommands"))
