/**
 * What every fuzz suite shares: how many runs and which seed, a watch for crashes that would
 * otherwise be swallowed, the RSS bound, an inbox that waits for answers without polling, and the
 * one report line per target.
 *
 * A crash here is any of: an uncaught exception, an unhandled rejection, or an error that a
 * TransportSocket caught from its receive loop or from a component's message handler (the socket
 * counts and reports those instead of dying, so a throwing decoder would otherwise go unseen).
 *
 * Runs: `FUZZ_RUNS` multiplies every target's default number of runs (1 in `npm test`, 10 in
 * `npm run fuzz`); `FUZZ_SEED` fixes the seed (default: a fixed one per target, so `npm test` is
 * deterministic); fast-check prints the seed and the path of a failing case, which replay it with
 * `FUZZ_SEED=<seed> FUZZ_PATH=<path>`. `FUZZ_NO_SHRINK=1` stops at the first failure.
 */
import fc from 'fast-check'
import { TransportSocket } from '../../lib/transport/socket.js'
import { collect, report, rssMb } from '../helpers/hostile.js'

/** RSS growth allowed for one target, in MB (as the hostile suites: both ends live in this process). */
export const RSS_BOUND_MB = 150

/** How many times the defaults to run: `FUZZ_RUNS` (a number), 1 unless set. */
export const RUNS_FACTOR = Math.max(0.01, Number(process.env.FUZZ_RUNS ?? '1') || 1)

/** fast-check parameters for one target: its runs times {@link RUNS_FACTOR}, and its seed. */
export function fuzzParameters(defaultSeed: number, defaultRuns: number): fc.Parameters<unknown> {
  const seedText = process.env.FUZZ_SEED
  const seed = seedText === undefined ? defaultSeed : seedText === 'random' ? Date.now() ^ (Math.random() * 2 ** 31) : Number(seedText)
  const path = process.env.FUZZ_PATH
  return {
    seed,
    numRuns: Math.max(1, Math.round(defaultRuns * RUNS_FACTOR)),
    ...(path !== undefined && { path }),
    endOnFailure: process.env.FUZZ_NO_SHRINK === '1',
  }
}

/** Fails the test for anything that should never happen while a hostile peer talks to us. */
export class CrashWatch {
  readonly crashes: string[] = []
  private readonly onUncaught = (err: unknown): void => void this.crashes.push(`uncaughtException: ${describe(err)}`)
  private readonly onRejection = (err: unknown): void => void this.crashes.push(`unhandledRejection: ${describe(err)}`)
  private readonly originalReport: (err: unknown) => void

  constructor() {
    process.on('uncaughtException', this.onUncaught)
    process.on('unhandledRejection', this.onRejection)
    // The socket's report() is where a throw from a component's message handler ends up: record it.
    const proto = TransportSocket.prototype as unknown as { report(err: unknown): void }
    const original = proto.report
    const crashes = this.crashes
    this.originalReport = original
    proto.report = function (this: unknown, err: unknown) {
      crashes.push(`TransportSocket reported: ${describe(err)}`)
      original.call(this, err)
    }
  }

  /** Throws if anything was recorded; call inside the property so fast-check shrinks to the cause. */
  check(): void {
    if (this.crashes.length > 0) throw new Error(`crash while fuzzing:\n  ${this.crashes.join('\n  ')}`)
  }

  stop(): void {
    process.off('uncaughtException', this.onUncaught)
    process.off('unhandledRejection', this.onRejection)
    ;(TransportSocket.prototype as unknown as { report(err: unknown): void }).report = this.originalReport
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}\n${err.stack ?? ''}` : String(err)
}

/** Resident memory over a target's run: the reading before, and the peak sampled every 20 ms. */
export class RssWatch {
  readonly before: number
  peak: number
  private readonly timer: NodeJS.Timeout

  constructor() {
    collect()
    this.before = rssMb()
    this.peak = this.before
    this.timer = setInterval(() => (this.peak = Math.max(this.peak, rssMb())), 20)
  }

  get growth(): number {
    return Math.max(this.peak, rssMb()) - this.before
  }

  stop(): number {
    clearInterval(this.timer)
    return this.growth
  }
}

/**
 * Collects what a peer receives and wakes whoever waits for a condition on it, at once (no polling:
 * a run waits for its answers thousands of times).
 */
export class Inbox<T> {
  readonly items: T[] = []
  private waiters: Array<() => void> = []

  push(...items: T[]): void {
    this.items.push(...items)
    const waiters = this.waiters
    this.waiters = []
    for (const wake of waiters) wake()
  }

  clear(): void {
    this.items.length = 0
  }

  /** Resolves once `predicate` holds (checked on each arrival); rejects with `what` after `timeoutMs`. */
  async until(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const end = performance.now() + timeoutMs
    while (!predicate()) {
      const left = end - performance.now()
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 50))
        this.waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }
}

/** Resolves when `predicate` holds, checking every `everyMs` (for counters, which nothing announces). */
export async function eventually(predicate: () => boolean, timeoutMs: number, what: string, everyMs = 2): Promise<void> {
  const end = performance.now() + timeoutMs
  while (!predicate()) {
    if (performance.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, everyMs))
  }
}

/** The report line of one target: runs, messages fed, what was counted, memory, time. */
export function reportFuzz(target: string, fields: Record<string, number | string>): void {
  report(`fuzz ${target}`, fields)
}

/** Adds `n` to `map[key]`. */
export function bump(map: Map<string, number>, key: string, n = 1): void {
  map.set(key, (map.get(key) ?? 0) + n)
}
