/**
 * Which server gets the next call when a client is connected to several (no broker).
 *
 * The client offers a balancer only the endpoints in the best connection state (connected first;
 * ones this call has not tried first), so a policy only weighs load:
 * ```
 *   powerOfTwoChoices (default)  two endpoints at random, the one with the lower
 *                                (inFlight + 1) × latency moving average: slow or busy servers
 *                                get fewer calls, and no endpoint is starved (each is drawn)
 *   leastOutstanding             the fewest calls in flight; ties in turn
 *   roundRobin                   each in turn, whatever its load
 * ```
 * A policy is a small interface: `{ pick(candidates) }`, so users can write their own.
 */

/** What a balancer sees of one endpoint. */
export interface EndpointLoad {
  readonly endpoint: string
  /** Calls in flight to it now. */
  readonly inFlight: number
  /** Moving average of its answer time in ms (0 until it has answered a call). */
  readonly latencyMs: number
}

/** Picks the endpoint for the next call. */
export interface LoadBalancer {
  /** One of `candidates`, which is never empty. */
  pick<E extends EndpointLoad>(candidates: readonly E[]): E
}

/** Each endpoint in turn, whatever its load. */
export function roundRobin(): LoadBalancer {
  let next = 0
  return {
    pick: (candidates) => candidates[next++ % candidates.length]!,
  }
}

/** The endpoint with the fewest calls in flight; among equals, each in turn. */
export function leastOutstanding(): LoadBalancer {
  let next = 0
  return {
    pick(candidates) {
      const start = next++ % candidates.length
      let best = candidates[start]!
      for (let i = 1; i < candidates.length; i++) {
        const c = candidates[(start + i) % candidates.length]!
        if (c.inFlight < best.inFlight) best = c
      }
      return best
    },
  }
}

/**
 * Power of two choices: two distinct endpoints at random, the cheaper one by (inFlight + 1) × latency.
 * Costs within 20 % of each other are a tie, won by the first drawn. An endpoint that has not
 * answered yet counts as fast as the other one, so a new server is tried rather than avoided.
 * `random` is for tests.
 */
export function powerOfTwoChoices(random: () => number = Math.random): LoadBalancer {
  return {
    pick(candidates) {
      const n = candidates.length
      if (n === 1) return candidates[0]!
      const i = Math.floor(random() * n)
      let j = Math.floor(random() * (n - 1))
      if (j >= i) j++
      const a = candidates[i]!
      const b = candidates[j]!
      // One that has not answered yet is taken to be as fast as the other: compared on load alone.
      const costA = (a.inFlight + 1) * Math.max(a.latencyMs || b.latencyMs, MIN_LATENCY_MS)
      const costB = (b.inFlight + 1) * Math.max(b.latencyMs || a.latencyMs, MIN_LATENCY_MS)
      // Near-equal costs are a tie, and `a` is the random draw: equal servers share the calls instead
      // of the one a hair faster taking them all.
      return costB < costA * NEAR_TIE ? b : a
    },
  }
}

/** Latencies below this (ms) count as this much: below it jitter decides, not the server. */
const MIN_LATENCY_MS = 1
/** A cost must be below this share of the other's to win; closer ones are a tie. */
const NEAR_TIE = 0.8

/** The balancers by name, for options and the CLI. */
export const BALANCERS = { 'power-of-two': powerOfTwoChoices, 'least-outstanding': leastOutstanding, 'round-robin': roundRobin } as const
export type BalancerName = keyof typeof BALANCERS

/**
 * A moving average of answer times: each sample moves it `weight` of the way (0.2: about the last
 * ten answers count), so a server that slows down is noticed within a few calls. Between samples it
 * halves every `halfLifeMs`: a server shunned for being slow looks cheaper as time passes, gets a
 * call again, and is judged on what it does now rather than stay shunned on an old figure.
 */
export class LatencyAverage {
  private value = 0
  private at = 0

  constructor(
    private readonly weight = 0.2,
    private readonly halfLifeMs = 2000,
  ) {}

  /** The average now, in ms (0 until the first sample). */
  ms(now = performance.now()): number {
    if (this.value === 0) return 0
    const age = now - this.at
    return age <= 0 ? this.value : this.value * 2 ** (-age / this.halfLifeMs)
  }

  add(sampleMs: number, now = performance.now()): void {
    const current = this.ms(now)
    this.value = current === 0 ? Math.max(sampleMs, Number.MIN_VALUE) : current + this.weight * (sampleMs - current)
    this.at = now
  }
}
