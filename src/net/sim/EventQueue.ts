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
  // Keys in typed arrays that double when full; `size` entries are live.
  let times = new Float64Array(1_024)
  let orders = new Float64Array(1_024)
  const actions: Array<(() => void) | undefined> = []
  let size = 0
  let scheduled = 0
  let processed = 0
  let clock = 0

  const before = (time: number, order: number, i: number) =>
    time < times[i]! || (time === times[i] && order < orders[i]!)

  // Sift with a hole: the moving entry is written once, where it comes to rest.
  const schedule = (at: number, action: () => void) => {
    const time = Math.max(at, clock)
    const order = scheduled++
    if (size === times.length) {
      const grownTimes = new Float64Array(2 * size)
      grownTimes.set(times)
      times = grownTimes
      const grownOrders = new Float64Array(2 * size)
      grownOrders.set(orders)
      orders = grownOrders
    }
    let i = size++
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(time, order, parent)) break
      times[i] = times[parent]!
      orders[i] = orders[parent]!
      actions[i] = actions[parent]!
      i = parent
    }
    times[i] = time
    orders[i] = order
    actions[i] = action
  }

  const pop = (): () => void => {
    const action = actions[0]!
    clock = times[0]!
    size--
    const time = times[size]!
    const order = orders[size]!
    const moving = actions[size]!
    actions[size] = undefined
    if (size === 0) return action
    let i = 0
    while (true) {
      const left = 2 * i + 1
      if (left >= size) break
      const right = left + 1
      const child = right < size && before(times[right]!, orders[right]!, left) ? right : left
      if (before(time, order, child)) break
      times[i] = times[child]!
      orders[i] = orders[child]!
      actions[i] = actions[child]!
      i = child
    }
    times[i] = time
    orders[i] = order
    actions[i] = moving
    return action
  }

  return {
    now: () => clock,
    schedule,
    runUntil: (until) => {
      while (size > 0 && times[0]! <= until) {
        processed++
        pop()()
      }
      clock = Math.max(clock, until)
    },
    processed: () => processed
  }
}
