/**
 * The simulation's clock: a binary min-heap of actions keyed by simulated time, ties broken by the order
 * they were scheduled in, so a run never depends on anything but its seed.
 */

export interface EventQueue {
  /** The time of the action running now (ms since the start of the run). */
  readonly now: () => number
  readonly schedule: (at: number, action: () => void) => void
  /** Runs actions in time order until the queue is empty or the next one is past `until`. */
  readonly runUntil: (until: number) => void
  /** Actions run so far. */
  readonly processed: () => number
}

export const makeEventQueue = (): EventQueue => {
  const times: Array<number> = []
  const orders: Array<number> = []
  const actions: Array<() => void> = []
  let scheduled = 0
  let processed = 0
  let clock = 0

  const before = (i: number, j: number) => times[i]! < times[j]! || (times[i] === times[j] && orders[i]! < orders[j]!)
  const swap = (i: number, j: number) => {
    const time = times[i]!
    times[i] = times[j]!
    times[j] = time
    const order = orders[i]!
    orders[i] = orders[j]!
    orders[j] = order
    const action = actions[i]!
    actions[i] = actions[j]!
    actions[j] = action
  }

  const schedule = (at: number, action: () => void) => {
    let i = times.length
    times.push(Math.max(at, clock))
    orders.push(scheduled++)
    actions.push(action)
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(i, parent)) break
      swap(i, parent)
      i = parent
    }
  }

  const pop = (): () => void => {
    const action = actions[0]!
    clock = times[0]!
    const last = times.length - 1
    swap(0, last)
    times.pop()
    orders.pop()
    actions.pop()
    let i = 0
    const size = times.length
    while (true) {
      const left = 2 * i + 1
      const right = left + 1
      let smallest = i
      if (left < size && before(left, smallest)) smallest = left
      if (right < size && before(right, smallest)) smallest = right
      if (smallest === i) break
      swap(i, smallest)
      i = smallest
    }
    return action
  }

  return {
    now: () => clock,
    schedule,
    runUntil: (until) => {
      while (times.length > 0 && times[0]! <= until) {
        processed++
        pop()()
      }
      clock = Math.max(clock, until)
    },
    processed: () => processed
  }
}
