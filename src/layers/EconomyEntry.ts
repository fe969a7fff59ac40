/**
 * The economy as services: the rUv ledger, stake and slashing, reputation, rewards, the compute AMM,
 * sealed-bid task auctions and stake-weighted governance, each over the event kernel, with the RPC
 * groups a node serves them by and `economyServices`, their layers composed.
 *
 * @packageDocumentation
 * @module edge-net/economy
 */
export { EconomyRpcs } from "../actors/economy/EconomyRpc.js"
export { Balance, Ledger, TransferReceipt } from "../actors/economy/Ledger.js"
export { InsufficientFunds, InvalidAmount, LedgerError } from "../actors/economy/LedgerErrors.js"
export { LedgerRpcs } from "../actors/economy/LedgerRpc.js"
export { NetworkParameters } from "../actors/economy/NetworkParameters.js"
export { Reputation, ReputationView } from "../actors/economy/ReputationService.js"
export { Rewards, RewardView } from "../actors/economy/RewardService.js"
export { StakeReceipt, StakeView, Staking } from "../actors/economy/StakeService.js"
export { GovernanceRpcs } from "../actors/governance/GovernanceRpc.js"
export { Governance, proposalIdOf } from "../actors/governance/GovernanceService.js"
export { Auctions, AuctionView, BidView } from "../actors/market/AuctionService.js"
export { MarketRpcs } from "../actors/market/MarketRpc.js"
export { Market, PoolView, QuoteView, SwapReceipt } from "../actors/market/MarketService.js"
export { commitmentOf } from "../actors/market/TaskAuction.js"
export { AccountId, Credits, OperationId } from "../domain/Money.js"
export { economyServices } from "./Economy.js"
