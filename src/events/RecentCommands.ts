/**
 * The command ids an entity handled recently and where their events sit in the log: the memory
 * behind idempotency. A fixed ring, so remembering one more id and forgetting the oldest is O(1).
 */

/** Global positions of a command's first and last event (one append, so consecutive). */
export type CommandSpan = readonly [first: number, last: number]

export class RecentCommands {
  private readonly spans = new Map<string, [number, number]>()
  private readonly ring: Array<string | undefined>
  private next = 0

  constructor(readonly capacity: number) {
    this.ring = new Array(Math.max(1, capacity))
  }

  get(commandId: string): CommandSpan | undefined {
    return this.spans.get(commandId)
  }

  /** Records that `commandId` appended the event at `position`. */
  record(commandId: string, position: number): void {
    const span = this.spans.get(commandId)
    if (span !== undefined) {
      span[1] = Math.max(span[1], position)
      return
    }
    const forgotten = this.ring[this.next]
    if (forgotten !== undefined) this.spans.delete(forgotten)
    this.ring[this.next] = commandId
    this.next = (this.next + 1) % this.ring.length
    this.spans.set(commandId, [position, position])
  }
}
