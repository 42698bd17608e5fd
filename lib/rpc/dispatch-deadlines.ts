/**
 * The deadlines of the calls whose handler looked at `ctx.signal`, on one timer: a
 * {@link DeadlineWheel} instead of a timer per call. Signals abort at most one tick (5 ms) after
 * the deadline, never before it.
 *
 * The wheel is stopped once it has held nothing for a turn, so no timer outlives the calls (a
 * server that closes leaves nothing that keeps the process alive), yet calls that come and go one
 * at a time do not arm and clear a timer each.
 */
import { DeadlineWheel } from './deadline-timer.js'

/** What the wheel needs of a call. */
export interface Expiring {
  readonly deadline: number
  /** Called once when the deadline has passed. */
  expire(): void
}

/**
 * One dispatcher's signal deadlines.
 *
 * @example
 * const deadlines = new CallDeadlines<ActiveCall>()
 * deadlines.add(call)      // when the handler first reads ctx.signal
 * deadlines.remove(call)   // when the call ends first
 */
export class CallDeadlines<T extends Expiring> {
  private readonly wheel = new DeadlineWheel<T>((call) => this.fire(call))
  private count = 0
  private idleCheck: NodeJS.Immediate | undefined

  add(call: T): void {
    this.count++
    this.wheel.add(call.deadline, call)
  }

  /** Forgets `call`; only for a call that was added and has not fired. */
  remove(call: T): void {
    this.wheel.remove(call.deadline, call)
    if (--this.count === 0) this.stopWhenIdle()
  }

  private fire(call: T): void {
    // The last item's timer is the one running now: clearing here would only forget emptied buckets.
    this.count--
    call.expire()
  }

  private stopWhenIdle(): void {
    this.idleCheck ??= setImmediate(() => {
      this.idleCheck = undefined
      if (this.count === 0) this.wheel.clear()
    })
  }
}
