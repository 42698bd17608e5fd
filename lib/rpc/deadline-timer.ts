/**
 * A timer for an absolute deadline that never fires early.
 *
 * Node's `setTimeout` takes at most 2^31-1 ms (about 24.8 days); a longer delay fires after 1 ms.
 * The wire allows budgets up to 2^53-1 ms, so a long deadline is reached in steps: the timer is
 * clamped, and re-armed each time it fires before the deadline.
 */

/** The longest delay Node's setTimeout honours. */
export const MAX_TIMER_MS = 2 ** 31 - 1

/** A pending deadline; `clear()` stops it (safe to call more than once). */
export interface DeadlineTimer {
  clear(): void
}

/**
 * Calls `fire` once, when `Date.now()` reaches `deadline` (ms since the epoch), however far away.
 *
 * @example
 * const timer = atDeadline(Date.now() + budgetMs, () => end('DEADLINE_EXCEEDED'))
 * // ... on reply: timer.clear()
 */
export function atDeadline(deadline: number, fire: () => void, unref = false): DeadlineTimer {
  let handle: NodeJS.Timeout | undefined
  const arm = (): void => {
    const left = deadline - Date.now()
    if (left > MAX_TIMER_MS) {
      handle = setTimeout(arm, MAX_TIMER_MS)
    } else {
      handle = setTimeout(fire, Math.max(0, left))
    }
    if (unref) handle.unref()
  }
  arm()
  return { clear: () => clearTimeout(handle) }
}

/**
 * Many deadlines on one timer: the hot path's alternative to a timer per call.
 *
 * Deadlines are rounded up to the next multiple of `tickMs` and kept in one bucket per tick; one
 * timer (an {@link atDeadline}, so it never fires early) is armed for the earliest bucket. Adding
 * and removing are O(1) (a Map of Sets); a deadline fires at most `tickMs` late, never early.
 *
 * @example
 * const wheel = new DeadlineWheel<Call>((call) => call.expire())
 * wheel.add(call.deadline, call)
 * // ... on reply: wheel.remove(call.deadline, call)
 */
export class DeadlineWheel<T> {
  private readonly buckets = new Map<number, Set<T>>()
  /** Bucket keys in a min-heap, one per bucket. An emptied bucket stays until its tick (so a key is
   * never pushed twice), which bounds both by the longest budget divided by `tickMs`. */
  private readonly heap: number[] = []
  private timer: DeadlineTimer | undefined
  private armedFor = Infinity

  constructor(
    private readonly fire: (item: T) => void,
    private readonly tickMs = 5,
  ) {}

  /** Items waiting. */
  get size(): number {
    let n = 0
    for (const bucket of this.buckets.values()) n += bucket.size
    return n
  }

  /** Calls `fire(item)` once `Date.now()` reaches `deadline`, unless removed first. */
  add(deadline: number, item: T): void {
    const key = Math.ceil(deadline / this.tickMs)
    let bucket = this.buckets.get(key)
    if (bucket === undefined) {
      bucket = new Set()
      this.buckets.set(key, bucket)
      this.push(key)
    }
    bucket.add(item)
    if (key < this.armedFor) this.arm(key)
  }

  /** Forgets `item`, added with `deadline`. */
  remove(deadline: number, item: T): void {
    const key = Math.ceil(deadline / this.tickMs)
    this.buckets.get(key)?.delete(item)
  }

  /** Stops the timer and forgets every item. */
  clear(): void {
    this.timer?.clear()
    this.timer = undefined
    this.armedFor = Infinity
    this.buckets.clear()
    this.heap.length = 0
  }

  private arm(key: number): void {
    this.timer?.clear()
    this.armedFor = key
    this.timer = atDeadline(key * this.tickMs, () => this.expire())
  }

  private expire(): void {
    this.timer = undefined
    this.armedFor = Infinity
    const now = Date.now()
    while (this.heap.length > 0 && this.heap[0]! * this.tickMs <= now) {
      const key = this.pop()
      const bucket = this.buckets.get(key)
      if (bucket === undefined) continue
      this.buckets.delete(key)
      for (const item of bucket) this.fire(item)
    }
    // Buckets emptied by remove() need no timer: drop them up to the first one with items.
    while (this.heap.length > 0 && this.buckets.get(this.heap[0]!)?.size === 0) this.buckets.delete(this.pop())
    if (this.heap.length > 0) this.arm(this.heap[0]!)
  }

  private push(key: number): void {
    const heap = this.heap
    heap.push(key)
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (heap[parent]! <= key) break
      heap[i] = heap[parent]!
      i = parent
    }
    heap[i] = key
  }

  private pop(): number {
    const heap = this.heap
    const top = heap[0]!
    const last = heap.pop()!
    if (heap.length > 0) {
      let i = 0
      for (;;) {
        const left = 2 * i + 1
        if (left >= heap.length) break
        const right = left + 1
        const child = right < heap.length && heap[right]! < heap[left]! ? right : left
        if (heap[child]! >= last) break
        heap[i] = heap[child]!
        i = child
      }
      heap[i] = last
    }
    return top
  }
}
