/**
 * Gap detection: the last sequence number seen per stream (publisher, topic, key), in a map with a
 * size cap. Pure: no sockets, no timers.
 *
 * Sequence numbers come from the network, so any peer that can publish can send any number under
 * any publisher id. A forged number must not silence the honest stream: a number further than
 * `maxJump` from everything seen on the stream is an impossible jump, so it starts a new epoch (a
 * second counter) instead of moving the first. Each stream keeps at most two counters, the one
 * used last and the one before, so the honest counter survives any single forged one.
 *
 * ```
 *   last L (counter)      received s                        verdict
 *   L < s <= L + maxJump  s = L + 1 / s > L + 1             next / gap (s - L - 1 missed)
 *   L - maxJump <= s <= L                                   duplicate (latest when s = L)
 *   every counter further than maxJump from s               epoch: a new counter at s
 *   a run of `resetRun` consecutive duplicates s, s+1, ...   epoch: the publisher restarted its numbers
 * ```
 */

/** What one sequence number means for its stream. */
export type SequenceVerdict =
  | { readonly kind: 'first' }
  | { readonly kind: 'next' }
  | { readonly kind: 'gap'; readonly missed: number }
  /** `latest` when it repeats the last one seen (a last-value replay); `at` is when that was seen. */
  | { readonly kind: 'duplicate'; readonly latest: boolean; readonly at: number }
  /** An impossible jump (forged, or a publisher that restarted its numbers): a new counter from `seq`; `previous` is the counter it did not fit. */
  | { readonly kind: 'epoch'; readonly previous: number }

const FIRST: SequenceVerdict = { kind: 'first' }
const NEXT: SequenceVerdict = { kind: 'next' }

/** Default largest forward or backward distance still read as the same run of numbers: 2^20. */
export const DEFAULT_MAX_JUMP = 2 ** 20
/** Default count of consecutive, contiguous duplicates read as a restarted publisher. */
export const DEFAULT_RESET_RUN = 16

interface Counter {
  seq: number
  /** The caller's clock (a message counter) when `seq` was seen. */
  at: number
}

interface Last<I> {
  /** The counter used last. */
  main: Counter
  /** The counter before an epoch, kept so that one forged number cannot end the honest run. */
  other: Counter | undefined
  /** Consecutive duplicates, each one more than the previous, and the last of them. */
  run: number
  runSeq: number
  /** What the caller wants to remember about the stream (parsed once, not per message). */
  readonly info: I
}

/** Options for {@link SequenceTracker}. */
export interface SequenceTrackerOptions {
  /** Largest distance from a counter still read as a gap or a duplicate (default 2^20). */
  readonly maxJump?: number
  /** Consecutive contiguous duplicates that mean the publisher restarted its numbers (default 16). */
  readonly resetRun?: number
}

/**
 * Tracks up to `maxStreams` streams; past that, the one first seen longest ago is forgotten.
 *
 * Why a cap: keys come from publishers, so a publisher with a million keys must not grow every
 * subscriber by a million entries. An evicted stream starts over as 'first': a gap across the
 * eviction goes unreported, nothing is reported falsely. Eviction by first sight, not by last use:
 * keeping a recency order costs a delete and an insert per message, for every message.
 *
 * @example
 * const tracker = new SequenceTracker(10_000)
 * tracker.observe('prices\0AAPL\0' + publisher, 7, 1) // { kind: 'first' }
 */
export class SequenceTracker<I = undefined> {
  readonly #last = new Map<string, Last<I>>()
  readonly #maxJump: number
  readonly #resetRun: number
  /** The counter matched by the latest observe(), for touch(). */
  #matched: Counter | undefined
  evicted = 0
  /** New epochs started: impossible jumps and restarts. */
  epochs = 0
  /** The info of the stream given to the latest {@link observe} call. */
  current: I | undefined

  constructor(
    readonly maxStreams: number,
    options: SequenceTrackerOptions = {},
  ) {
    this.#maxJump = Math.max(1, options.maxJump ?? DEFAULT_MAX_JUMP)
    this.#resetRun = Math.max(2, options.resetRun ?? DEFAULT_RESET_RUN)
  }

  get size(): number {
    return this.#last.size
  }

  /** Records `seq` for `stream`, seen at `at`, unless it is a duplicate (at or below the last one seen). */
  observe(stream: string, seq: number, at: number, describe?: () => I): SequenceVerdict {
    const last = this.#last.get(stream)
    if (last === undefined) {
      if (this.#last.size >= this.maxStreams) this.#evictOldest()
      const info = describe?.() as I
      this.current = info
      this.#matched = { seq, at }
      this.#last.set(stream, { main: this.#matched, other: undefined, run: 0, runSeq: 0, info })
      return FIRST
    }
    this.current = last.info
    // The counter just below `seq` within reach moves forward; of two, the nearer one.
    const ahead = pick(last.main, last.other, (c) => seq > c.seq && seq - c.seq <= this.#maxJump, (c) => -c.seq)
    if (ahead !== undefined) {
      last.run = 0
      const previous = ahead.seq
      ahead.seq = seq
      ahead.at = at
      this.#use(last, ahead)
      return seq === previous + 1 ? NEXT : { kind: 'gap', missed: seq - previous - 1 }
    }
    const behind = pick(last.main, last.other, (c) => seq <= c.seq && c.seq - seq <= this.#maxJump, (c) => c.seq)
    if (behind !== undefined) {
      this.#matched = behind
      last.run = last.run > 0 && seq === last.runSeq + 1 ? last.run + 1 : 1
      last.runSeq = seq
      // A publisher that restarted its numbers under the same id sends 1, 2, 3 ... all below L.
      if (last.run < this.#resetRun) return { kind: 'duplicate', latest: seq === behind.seq, at: behind.at }
    }
    return this.#epoch(last, seq, at)
  }

  /** Moves the time the counter matched by the latest observe() was seen to `at` (after handing it out again). */
  touch(stream: string, at: number): void {
    const last = this.#last.get(stream)
    if (last !== undefined && this.#matched !== undefined && (this.#matched === last.main || this.#matched === last.other)) this.#matched.at = at
  }

  /** Forgets every stream whose id starts with `prefix` and that `keep` does not claim. */
  forget(prefix: string, keep: (stream: string) => boolean): void {
    for (const stream of this.#last.keys()) if (stream.startsWith(prefix) && !keep(stream)) this.#last.delete(stream)
  }

  #epoch(last: Last<I>, seq: number, at: number): SequenceVerdict {
    this.epochs++
    last.run = 0
    const previous = last.main.seq
    const fresh = { seq, at }
    // The counter used last stays as the other one: if this number was forged, the honest run goes on.
    last.other = last.main
    last.main = fresh
    this.#matched = fresh
    return { kind: 'epoch', previous }
  }

  #use(last: Last<I>, counter: Counter): void {
    this.#matched = counter
    if (counter === last.other) {
      last.other = last.main
      last.main = counter
    }
  }

  #evictOldest(): void {
    const oldest = this.#last.keys().next()
    if (oldest.done !== true) {
      this.#last.delete(oldest.value)
      this.evicted++
    }
  }
}

/** The counter of the two that passes `fits`, the one with the lowest `rank` if both do. */
function pick(a: Counter, b: Counter | undefined, fits: (c: Counter) => boolean, rank: (c: Counter) => number): Counter | undefined {
  const okA = fits(a)
  const okB = b !== undefined && fits(b)
  if (okA && okB) return rank(a) <= rank(b) ? a : b
  return okA ? a : okB ? b : undefined
}
