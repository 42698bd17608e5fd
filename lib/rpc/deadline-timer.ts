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
