/**
 * The economy as services: the rUv ledger, stake and slashing, reputation, rewards, the compute AMM,
 * sealed-bid task auctions and stake-weighted governance, each over the event kernel, with the RPC
 * groups a node serves them by and `economyServices`, their layers composed.
 *
 * @packageDocumentation
 * @module edge-net/economy
 */
export { AccountId, Credits, OperationId } from "../../domain/Money.js"
export { economyServices } from "../../layers/Economy.js"
export { GovernanceRpcs } from "../governance/GovernanceRpc.js"
export { Governance, proposalIdOf } from "../governance/GovernanceService.js"
export { Auctions, AuctionView, BidView } from "../market/AuctionService.js"
export { MarketRpcs } from "../market/MarketRpc.js"
export { Market, PoolView, QuoteView, SwapReceipt } from "../market/MarketService.js"
export { EconomyRpcs } from "./EconomyRpc.js"
export { Balance, Ledger, TransferReceipt } from "./Ledger.js"
export { InsufficientFunds, InvalidAmount, LedgerError } from "./LedgerErrors.js"
export { LedgerRpcs } from "./LedgerRpc.js"
export { NetworkParameters } from "./NetworkParameters.js"
export { Reputation, ReputationView } from "./ReputationService.js"
export { Rewards, RewardView } from "./RewardService.js"
export { StakeReceipt, StakeView, Staking } from "./StakeService.js"
