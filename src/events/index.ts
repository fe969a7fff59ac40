/**
 * The event kernel: an append-only, hash-chained, signed journal (SQLite or memory), actors that
 * decide on commands and fold their events, snapshots, policies, projections and the audit.
 *
 * @packageDocumentation
 * @module edge-net/events
 */
export * as ActorRunner from "./ActorRunner.js"
export type { Actor, ActorOptions, CommandOptions, CommandResult } from "./ActorRunner.js"
export { compareReplay, findBadSnapshots, JournalDoesNotVerify, requireVerifiedJournal, verifyChain } from "./Audit.js"
export type { BadSnapshot, ChainReport, ReplayReport, VerifyOptions } from "./Audit.js"
export { Authorization, withAuthorization } from "./Authorization.js"
export { fold } from "./Decider.js"
export type { Decider, EventSourced } from "./Decider.js"
export { canonicalEnvelopeText, envelopeHash, GENESIS_HASH, headMessage } from "./Envelope.js"
export type { NewEvent } from "./Envelope.js"
export { Envelope } from "./EnvelopeSchema.js"
export { ForkProof, forkProofId, forkProofValid } from "./ForkProof.js"
export { DEFAULT_MAX_PAYLOAD_BYTES, Journal, PayloadTooLarge, VersionConflict } from "./Journal.js"
export type {
  AppendOptions,
  AppendRefused,
  AppendRequest,
  AppendResult,
  ChainHead,
  ExpectedVersion,
  JournalService,
  SignedHead
} from "./Journal.js"
export * as MemoryJournal from "./MemoryJournal.js"
export * as Policy from "./Policy.js"
export { makeProjection } from "./Projection.js"
export { openReplica, ReplicaRefused } from "./Replica.js"
export { Snapshots } from "./Snapshots.js"
export type { Snapshot, SnapshotsService } from "./Snapshots.js"
export { SqliteDatabase, SqliteError } from "./SqliteDatabase.js"
export type { SqliteOptions, Synchronous } from "./SqliteDatabase.js"
export * as SqliteJournal from "./SqliteJournal.js"
