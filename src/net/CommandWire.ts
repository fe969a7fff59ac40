/**
 * Commands forwarded between peers: a node that does not sequence the economy sends an economy RPC,
 * as its contract encodes it (signature included), to the sequencer on `/edge-net/command/1.0.0`, and
 * gets back the RPC's exit as its contract encodes it, or why the sequencer would not take it. A
 * forwarder cannot forge or alter a signed command; it can only drop it.
 */
import { Schema } from "effect"

export const COMMAND_PROTOCOL = "/edge-net/command/1.0.0"

/** The largest forwarded command (a signed command's payload is capped at 256 KiB by the gate). */
export const MAX_COMMAND_BYTES = 320 * 1024
/** The largest answer: an RPC's encoded exit (a governance listing can be long). */
export const MAX_ANSWER_BYTES = 8 * 1024 * 1024

export const ForwardedCommand = Schema.Struct({
  /** The RPC's tag, e.g. `LedgerTransfer`. */
  rpc: Schema.String.pipe(Schema.maxLength(128)),
  /** Its payload as the RPC's payload Schema encodes it. */
  payload: Schema.Unknown
})
export type ForwardedCommand = typeof ForwardedCommand.Type

export const ForwardedAnswer = Schema.Union(
  /** The RPC's exit as `Rpc.exitSchema` encodes it. */
  Schema.Struct({ exit: Schema.Unknown }),
  /** Not run at all: not an economy command, not decodable, or this node is not the sequencer. */
  Schema.Struct({ refused: Schema.String })
)
export type ForwardedAnswer = typeof ForwardedAnswer.Type
