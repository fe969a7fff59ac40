/**
 * The rUv ledger: mint, transfer, escrow holds, burn. A transfer debits the payer's account, then credits
 * the payee's; the `ledger.credits` policy finishes any credit a crash interrupted, and both paths
 * use the same command id, so a credit lands exactly once.
 */
import { Clock, Effect, Layer, Random, Schema } from "effect"
import { streamCategory, streamEntityId } from "../../domain/Ids.js"
import type { AuditFolds, LogObserver } from "../../events/ActorRegistry.js"
import * as ActorRunner from "../../events/ActorRunner.js"
import { forEachRecord } from "../../events/Audit.js"
import type { Envelope } from "../../events/Envelope.js"
import { Journal } from "../../events/Journal.js"
import * as Policy from "../../events/Policy.js"
import type { AccountState } from "./Account.js"
import { Account, AccountEvent, heldTotal } from "./Account.js"
import { InvalidAmount } from "./LedgerErrors.js"

/** An account as clients see it: spendable, held in total and per hold, and the stream version. */
export const Balance = Schema.Struct({
  account: Schema.String,
  available: Schema.BigInt,
  held: Schema.BigInt,
  holds: Schema.Record({ key: Schema.String, value: Schema.BigInt }),
  version: Schema.Number
})
export type Balance = typeof Balance.Type

export const TransferReceipt = Schema.Struct({
  transferId: Schema.String,
  from: Balance,
  to: Balance,
  /** Global position of the credit, the transfer's last event. */
  position: Schema.Number,
  duplicate: Schema.Boolean
})
export type TransferReceipt = typeof TransferReceipt.Type

export interface SupplyReport {
  readonly minted: bigint
  readonly available: bigint
  readonly held: bigint
  /** Debited or captured but not yet credited: a transfer caught between its two steps. */
  readonly inFlight: bigint
  /** Destroyed by burns (slashing): no longer part of any balance. */
  readonly burned: bigint
  /** `minted = available + held + inFlight + burned`. */
  readonly conserved: boolean
}

const debitCommandId = (transferId: string) => `debit/${transferId}`
const creditCommandId = (transferId: string) => `credit/${transferId}`
const captureTransferId = (holdId: string) => `capture/${holdId}`

const toBalance = (account: string, state: AccountState, version: number): Balance => ({
  account,
  available: state.available,
  held: heldTotal(state),
  holds: state.held,
  version
})

const newId = Effect.zipWith(
  Clock.currentTimeMillis,
  Random.nextInt,
  (now, n) => `${now.toString(36)}-${(n >>> 0).toString(36)}`
)

export class Ledger extends Effect.Service<Ledger>()("edge-net/Ledger", {
  effect: Effect.gen(function*() {
    const accounts = yield* ActorRunner.make(Account, { snapshotEvery: 100 })
    const journal = yield* Journal

    /** The credit half of a capture (or of a transfer a crash cut short); a credit that already ran ends at once. */
    const credit = (to: string, transferId: string, from: string, amount: bigint, causationId: string) =>
      accounts.tell(to, { _tag: "Credit", transferId, from, amount }, {
        commandId: creditCommandId(transferId),
        causationId
      })

    const balance = Effect.fn("Ledger.balance")(function*(account: string) {
      const { state, version } = yield* accounts.state(account)
      return toBalance(account, state, version)
    })

    /** Creates `amount` rUv on the account; an operation id minted once stays that mint (the same amount again is a retry). */
    const mint = Effect.fn("Ledger.mint")(function*(account: string, amount: bigint, operationId?: string) {
      const id = operationId ?? (yield* newId)
      const result = yield* accounts.send(account, { _tag: "Mint", amount }, { commandId: `mint/${id}` })
      const minted = result.events[0]
      if (minted?._tag !== "Minted" || minted.amount !== amount) {
        const earlier = minted?._tag === "Minted" ? `${minted.amount} rUv` : "another operation"
        return yield* Effect.fail(
          new InvalidAmount({ amount, reason: `mint id ${id} was already used to mint ${earlier} on ${account}` })
        )
      }
      return toBalance(account, result.state, result.version)
    })

    const transfer = Effect.fn("Ledger.transfer")(
      function*(from: string, to: string, amount: bigint, transferId?: string) {
        if (from === to) {
          return yield* Effect.fail(new InvalidAmount({ amount, reason: "payer and payee are the same account" }))
        }
        const id = transferId ?? (yield* newId)
        // Debit and credit in one transaction: no transfer is left between its two steps by a crash.
        // (The credit's causation is its debit's command: the debit's position is not known before.)
        const [debit, credited] = yield* accounts.sendPair(
          {
            entityId: from,
            command: { _tag: "Debit", transferId: id, to, amount },
            options: { commandId: debitCommandId(id) }
          },
          {
            entityId: to,
            command: { _tag: "Credit", transferId: id, from, amount },
            options: { commandId: creditCommandId(id), causationId: debitCommandId(id) }
          }
        )
        const debitEvent = debit.events[0]
        if (debitEvent?._tag !== "Debited" || debitEvent.to !== to || debitEvent.amount !== amount) {
          return yield* Effect.fail(
            new InvalidAmount({ amount, reason: `transfer id ${id} was already used for another transfer` })
          )
        }
        return {
          transferId: id,
          // Each side as its own step left it: the payer's account is not read again.
          from: toBalance(from, debit.state, debit.version),
          to: toBalance(to, credited.state, credited.version),
          position: credited.position,
          duplicate: debit.duplicate
        } satisfies TransferReceipt
      }
    )

    const hold = Effect.fn("Ledger.hold")(function*(account: string, holdId: string, amount: bigint) {
      const result = yield* accounts.send(account, { _tag: "Hold", holdId, amount }, { commandId: `hold/${holdId}` })
      return toBalance(account, result.state, result.version)
    })

    const release = Effect.fn("Ledger.release")(function*(account: string, holdId: string) {
      const result = yield* accounts.send(account, { _tag: "Release", holdId }, { commandId: `release/${holdId}` })
      return toBalance(account, result.state, result.version)
    })

    /** Pays `amount` of a hold to `to`; the rest of the hold returns to the account. */
    const capture = Effect.fn("Ledger.capture")(function*(account: string, holdId: string, to: string, amount: bigint) {
      const captured = yield* accounts.send(account, { _tag: "Capture", holdId, to, amount }, {
        commandId: `capture/${holdId}`
      })
      yield* credit(to, captureTransferId(holdId), account, amount, `capture@${captured.position}`)
      return toBalance(account, captured.state, captured.version)
    })

    /** Destroys `amount` of the account's available rUv (a slash); never more than it holds. */
    const burn = Effect.fn("Ledger.burn")(function*(account: string, amount: bigint, operationId: string) {
      const result = yield* accounts.send(account, { _tag: "Burn", operationId, amount }, {
        commandId: `burn/${operationId}`
      })
      const burned = result.events[0]
      if (burned?._tag !== "Burned" || burned.amount !== amount) {
        return yield* Effect.fail(
          new InvalidAmount({ amount, reason: `operation id ${operationId} was already used for another burn` })
        )
      }
      return toBalance(account, result.state, result.version)
    })

    /**
     * Counts the rUv that moved, from the Account events it is handed: minted, burned, and transfers
     * between their debit (or capture) and their credit; with the accounts' states, the supply.
     */
    const startFlowCount = () => {
      let minted = 0n
      let burned = 0n
      // Transfers debited (or captured) and not yet credited, and credits whose debit is not yet read:
      // a pair leaves both as soon as it is whole, so only transfers in flight stay in memory.
      const outgoing = new Map<string, bigint>()
      const incoming = new Set<string>()
      const debited = (transferId: string, amount: string) => {
        if (!incoming.delete(transferId)) outgoing.set(transferId, BigInt(amount))
      }
      const observer: LogObserver = {
        category: Account.category,
        step: (record, parsed) => {
          // The stored form the journal's hash chain covers, written by encodeEvent: amounts as decimal text.
          const payload = parsed as { transferId?: string; holdId?: string; amount: string }
          switch (record.eventType) {
            case "Minted":
              minted += BigInt(payload.amount)
              break
            case "Burned":
              burned += BigInt(payload.amount)
              break
            case "Debited":
              debited(payload.transferId!, payload.amount)
              break
            case "HoldCaptured":
              debited(captureTransferId(payload.holdId!), payload.amount)
              break
            case "Credited":
              if (!outgoing.delete(payload.transferId!)) incoming.add(payload.transferId!)
          }
        }
      }
      const supplyOf = (states: ReadonlyMap<string, ActorRunner.Replayed<AccountState>>): SupplyReport => {
        let available = 0n
        let held = 0n
        for (const { state } of states.values()) {
          available += state.available
          held += heldTotal(state)
        }
        let inFlight = 0n
        for (const amount of outgoing.values()) inFlight += amount
        return {
          minted,
          available,
          held,
          inFlight,
          burned,
          conserved: minted === available + held + inFlight + burned
        }
      }
      return { observer, supplyOf }
    }

    /** Folds the whole log: minted supply against balances, holds and credits still on their way. */
    const supply = Effect.fn("Ledger.supply")(function*() {
      // One read of the log: the accounts folded, and the flows between them counted, from the same events.
      const fold = accounts.startFold()
      const flows = startFlowCount()
      yield* forEachRecord(journal, (record) => {
        if (streamCategory(record.streamId) !== Account.category) return
        const parsed: unknown = JSON.parse(record.payloadText)
        fold.step(record, parsed)
        flows.observer.step(record, parsed)
      })
      return flows.supplyOf(fold.states)
    })

    /**
     * The supply for a read of the log that others share (NodeAudit.replay): hand `observer` the
     * Account events, then ask `supply` with the read's folds, whose Account fold holds the balances.
     */
    const startSupplyCount = () => {
      const flows = startFlowCount()
      return {
        observer: flows.observer,
        supply: (folds: AuditFolds) => Effect.map(accounts.replayedIn(folds), flows.supplyOf)
      }
    }

    /**
     * Every account's balance (available and held) folded from the log alone: the figures the audit
     * reconciles books with. From `folds` when a shared read of the log has folded the accounts already.
     */
    const balancesFromLog = Effect.fn("Ledger.balancesFromLog")(function*(folds?: AuditFolds) {
      const balances = new Map<string, bigint>()
      for (const [account, { state }] of yield* accounts.replayedIn(folds)) {
        balances.set(account, state.available + heldTotal(state))
      }
      return balances as ReadonlyMap<string, bigint>
    })

    /**
     * Finishes the credit of a debit or capture, for the policy that survives crashes. Almost always
     * the transfer credited already: the credit's command id ends it at once (`tell` reads nothing back).
     */
    const completeCredit = (envelope: Envelope) =>
      Effect.gen(function*() {
        const account = streamEntityId(envelope.streamId)
        const decoded = yield* Effect.orDie(decodeEvent(envelope.payload))
        if (decoded._tag === "Debited") {
          yield* credit(decoded.to, decoded.transferId, account, decoded.amount, `debit@${envelope.position}`)
        }
        if (decoded._tag === "HoldCaptured") {
          yield* credit(
            decoded.to,
            captureTransferId(decoded.holdId),
            account,
            decoded.amount,
            `capture@${envelope.position}`
          )
        }
      })

    return {
      balance,
      mint,
      transfer,
      hold,
      release,
      capture,
      burn,
      supply,
      startSupplyCount,
      balancesFromLog,
      completeCredit
    } as const
  })
}) {}

const decodeEvent = Schema.decodeUnknown(AccountEvent)

/** The policy that completes interrupted transfers and captures: at least once, applied once. */
export const creditsPolicyDefinition = Effect.map(Ledger, (ledger): Policy.PolicyDefinition<never> => ({
  name: "ledger.credits",
  categories: ["Account"],
  eventTypes: ["Debited", "HoldCaptured"],
  handle: ledger.completeCredit
}))

export const creditsPolicy = Layer.unwrapEffect(Effect.map(creditsPolicyDefinition, Policy.layer))
