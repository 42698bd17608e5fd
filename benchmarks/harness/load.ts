/**
 * The closed-loop load model shared by every bench case.
 *
 * W virtual callers each keep exactly one call outstanding and issue the next one as soon as the
 * reply arrives. A phase is a warm-up (not reported) followed by a measurement window:
 * - calls/s: replies received inside the window, divided by its length;
 * - p50/p99: round trips of the calls both issued and completed inside the window, by exact
 *   nearest rank over the sorted samples.
 * After the window the callers stop issuing and the phase waits for the calls still in flight, with
 * a hard limit, so one phase never leaks load into the next.
 */
import { performance } from 'node:perf_hooks'

/** One call of the system under test; resolves when the reply is back and checked. */
export type CallFn = () => Promise<void>

export interface PhaseOptions {
  /** Virtual callers (calls in flight). */
  readonly window: number
  readonly warmupMs: number
  readonly measureMs: number
  /** How long the calls in flight after the window may take to finish before the phase fails. */
  readonly drainTimeoutMs?: number
}

export interface PhaseResult {
  readonly window: number
  /** Replies received in the measurement window. */
  readonly completed: number
  readonly callsPerSec: number
  /** Round trip, microseconds, nearest rank; NaN when no call was both issued and completed in the window. */
  readonly p50Us: number
  readonly p99Us: number
  readonly samples: number
  /** Calls that failed (rejected, or a reply of the wrong size), over the whole phase. */
  readonly errors: number
  readonly firstError?: string
}

/** Exact nearest-rank percentile of sorted values: the ceil(p/100 * n)-th smallest. */
export function nearestRank(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[rank - 1]!
}

/** Runs one phase of the closed loop against `call`. */
export async function runPhase(call: CallFn, options: PhaseOptions): Promise<PhaseResult> {
  const start = performance.now()
  const measureStart = start + options.warmupMs
  const measureEnd = measureStart + options.measureMs
  let samples = new Float64Array(1 << 16)
  let sampleCount = 0
  let completed = 0
  let errors = 0
  let firstError: string | undefined

  const caller = async (): Promise<void> => {
    while (performance.now() < measureEnd) {
      const t0 = performance.now()
      try {
        await call()
      } catch (err) {
        errors++
        firstError ??= err instanceof Error ? `${err.name}: ${err.message}` : String(err)
        // A failing system must not spin: give the event loop a turn before the next try.
        await new Promise((resolve) => setImmediate(resolve))
        continue
      }
      const t1 = performance.now()
      if (t1 < measureStart || t1 > measureEnd) continue
      completed++
      if (t0 >= measureStart) {
        if (sampleCount === samples.length) {
          const bigger = new Float64Array(samples.length * 2)
          bigger.set(samples)
          samples = bigger
        }
        samples[sampleCount++] = t1 - t0
      }
    }
  }

  const callers = Array.from({ length: options.window }, caller)
  let timer: NodeJS.Timeout | undefined
  const limit = options.measureMs + options.warmupMs + (options.drainTimeoutMs ?? 15_000)
  try {
    await Promise.race([
      Promise.all(callers),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`phase did not finish within ${limit} ms (calls lost or stalled)`)), limit)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }

  const sorted = samples.subarray(0, sampleCount).sort()
  return {
    window: options.window,
    completed,
    callsPerSec: completed / (options.measureMs / 1000),
    p50Us: nearestRank(sorted, 50) * 1000,
    p99Us: nearestRank(sorted, 99) * 1000,
    samples: sampleCount,
    errors,
    ...(firstError !== undefined && { firstError }),
  }
}
