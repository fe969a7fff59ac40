/**
 * Why an entity stands where it does, in one paragraph from its events alone: an optimizer job, an
 * adapter training job, a proposal, an account (auctions and rounds explain themselves in their folders).
 */
import { Schema } from "effect"
import { TrainingEvent } from "../actors/adapters/TrainingJob.js"
import { ProposalEvent } from "../actors/governance/Proposal.js"
import { JobEvent } from "../actors/optimizer/OptimizerJob.js"
import type { Envelope } from "../events/Envelope.js"

const decodeProposalEvent = Schema.decodeUnknownSync(ProposalEvent)
const decodeJobEvent = Schema.decodeUnknownSync(JobEvent)
const decodeTrainingEvent = Schema.decodeUnknownSync(TrainingEvent)
const figure = (value: number | undefined, digits = 4) => (value === undefined ? "?" : value.toFixed(digits))

/** An optimization job's steps: what was asked, what was measured and chosen, how it ended. */
export const explainOptimizerJob = (jobId: string, payloads: ReadonlyArray<unknown>) => {
  const sentences: Array<string> = []
  const facts: Record<string, unknown> = { jobId }
  for (const payload of payloads) {
    const event = decodeJobEvent(payload)
    switch (event._tag) {
      case "JobRequested": {
        const { spec } = event
        facts.spec = spec
        sentences.push(
          `Optimizer job ${jobId} was asked for ${spec.quantization} of model ${
            spec.model.name ?? spec.model.sha256.slice(0, 12)
          } (${spec.model.size} bytes${
            spec.calibration === undefined ? ", random inputs" : `, ${spec.calibration.samples} calibration samples`
          }${spec.qualityBar === undefined ? "" : `, quality bar ${JSON.stringify(spec.qualityBar)}`}).`
        )
        break
      }
      case "SensitivitiesMeasured":
        facts.layersMeasured = event.layers.length
        sentences.push(`It measured ${event.layers.length} layers' sensitivity (${event.metric}).`)
        break
      case "PrecisionAssigned":
        facts.bits = event.bits
        sentences.push(
          `It chose ${
            Object.keys(event.bits).length
          } layers' precision for an estimated ${event.estimatedBytes} of ${event.budgetBytes} budget bytes.`
        )
        break
      case "JobCompleted":
        facts.status = "completed"
        facts.artifact = event.artifact
        facts.report = event.report
        sentences.push(
          `It completed: sha256 ${event.artifact.sha256.slice(0, 12)} (${event.artifact.size} bytes, ${
            figure((event.report.sizeRatio ?? Number.NaN) * 100, 1)
          }% of the original), output cosine ${figure(event.report.cosine, 5)} on held-out inputs.`
        )
        break
      case "JobRefused":
        facts.status = "refused"
        facts.reasons = event.reasons
        sentences.push(`It was refused: ${event.reasons.join("; ")}.`)
        break
      case "JobFailed":
        facts.status = "failed"
        sentences.push(`It failed: ${event.reason}.`)
    }
  }
  return { why: sentences.join(" "), facts }
}

/** An adapter training job: the base, the data and the settings, and the adapter it made. */
export const explainTrainingJob = (jobId: string, payloads: ReadonlyArray<unknown>) => {
  const sentences: Array<string> = []
  const facts: Record<string, unknown> = { jobId }
  for (const payload of payloads) {
    const event = decodeTrainingEvent(payload)
    switch (event._tag) {
      case "TrainingRequested": {
        const { spec } = event
        facts.spec = spec
        sentences.push(
          `Training job ${jobId} was asked for adapter ${spec.adapter.id}@${spec.adapter.version} on ${spec.base.id} (sha256 ${
            spec.base.sha256.slice(0, 12)
          }) from ${spec.data.name} (${spec.data.size} bytes, sha256 ${
            spec.data.sha256.slice(0, 12)
          }), task ${spec.task}.`
        )
        break
      }
      case "TrainingCompleted":
        facts.status = "completed"
        facts.outcome = event
        sentences.push(
          `It completed in ${event.steps} steps on ${event.trainSamples} samples: ${event.metric} ${
            figure(event.before)
          } -> ${figure(event.after)} on ${event.heldOutSamples} held out; stored with checksum ${
            event.adapter.checksum.slice(0, 19)
          }.`
        )
        break
      case "TrainingFailed":
        facts.status = "failed"
        sentences.push(`It failed: ${event.reason}.`)
    }
  }
  return { why: sentences.join(" "), facts }
}

/** A proposal's votes and fate, from its events. */
export const explainProposal = (proposalId: string, payloads: ReadonlyArray<unknown>) => {
  const votes: Array<{ voter: string; support: string; weight: bigint }> = []
  const sentences: Array<string> = []
  for (const payload of payloads) {
    const event = decodeProposalEvent(payload)
    switch (event._tag) {
      case "ProposalCreated":
        sentences.push(
          `Proposal ${proposalId} by ${event.proposer}: set ${event.parameter} (${event.owner}) to ${event.value} ("${event.description}"); ` +
            `stake snapshot at position ${event.snapshot} (total ${event.totalStake} rUv), quorum ${event.quorumPpm} ppm, voting ` +
            `${new Date(event.voteStart).toISOString()}..${
              new Date(event.voteEnd).toISOString()
            }, timelock ${event.timelockMs} ms (governance parameters version ${event.parametersVersion}).`
        )
        break
      case "VoteCast":
        votes.push({ voter: event.voter, support: event.support, weight: event.weight })
        break
      case "ProposalQueued":
        sentences.push(`Queued; executable after ${new Date(event.eta).toISOString()}.`)
        break
      case "ProposalExecuted":
        sentences.push(
          `Executed: for ${event.forVotes}, against ${event.againstVotes}, abstain ${event.abstainVotes}, quorum ${event.quorumRequired} rUv required.`
        )
        break
      case "ProposalCanceled":
        sentences.push(`Canceled by ${event.by}.`)
        break
    }
  }
  if (votes.length > 0) {
    sentences.splice(
      1,
      0,
      `Votes: ${votes.map((vote) => `${vote.voter} ${vote.support} ${vote.weight}`).join(", ")}.`
    )
  }
  return { why: sentences.join(" "), facts: { votes } }
}

/** An account's history in one line: what came in, what went out. */
export const explainAccount = (account: string, events: ReadonlyArray<Envelope>) => {
  const totals: Record<string, bigint> = {}
  for (const envelope of events) {
    const amount = (envelope.payload as { amount?: string }).amount
    if (amount !== undefined) totals[envelope.eventType] = (totals[envelope.eventType] ?? 0n) + BigInt(amount)
  }
  const parts = Object.entries(totals).map(([eventType, total]) => `${eventType} ${total} rUv`)
  return {
    why: `Account ${account}: ${events.length} event(s)${parts.length > 0 ? `; ${parts.join(", ")}` : ""}.`,
    facts: { totals }
  }
}
