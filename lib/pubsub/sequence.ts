/**
 * Gap detection: the last sequence number seen per stream (publisher, topic, key), in a map with a
 * size cap. Pure: no sockets, no timers.
 */

/** What one sequence number means for its stream. */
export type SequenceVerdict =
  | { readonly kind: 'first' }
  | { readonly kind: 'next' }
  | { readonly kind: 'gap'; readonly missed: number }
  /** `latest` when it repeats the last one seen (a last-value replay); `at` is when that was seen. */
  | { readonly kind: 'duplicate'; readonly latest: boolean; readonly at: number }

const FIRST: SequenceVerdict = { kind: 'first' }
const NEXT: SequenceVerdict = { kind: 'next' }

interface Last<I> {
  seq: number
  /** The caller's clock (a message counter) when `seq` was seen. */
  at: number
  /** What the caller wants to remember about the stream (parsed once, not per message). */
  readonly info: I
}

/**
 * Tracks up to `maxStreams` streams; past that, the one first seen longest ago is forgotten.
 *
 * Why a cap: keys come from publishers, so a publisher with a million keys must not grow every
 * subscriber by a million entries. An evicted stream starts over as 'first': a gap across the
 * eviction goes unreported, nothing is reported falsely. Eviction by first sight, not by last use:
 * keeping a recency order costs a delete and an insert per message, for every message.
 */
export class SequenceTracker<I = undefined> {
  readonly #last = new Map<string, Last<I>>()
  evicted = 0
  /** The info of the stream given to the latest {@link observe} call. */
  current: I | undefined

  constructor(readonly maxStreams: number) {}

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
      this.#last.set(stream, { seq, at, info })
      return FIRST
    }
    this.current = last.info
    if (seq <= last.seq) return { kind: 'duplicate', latest: seq === last.seq, at: last.at }
    const previous = last.seq
    last.seq = seq
    last.at = at
    return seq === previous + 1 ? NEXT : { kind: 'gap', missed: seq - previous - 1 }
  }

  /** Moves the time `stream`'s last message was seen to `at` (after handing it out again). */
  touch(stream: string, at: number): void {
    const last = this.#last.get(stream)
    if (last !== undefined) last.at = at
  }

  /** Forgets every stream whose id starts with `prefix` and that `keep` does not claim. */
  forget(prefix: string, keep: (stream: string) => boolean): void {
    for (const stream of this.#last.keys()) if (stream.startsWith(prefix) && !keep(stream)) this.#last.delete(stream)
  }

  #evictOldest(): void {
    const oldest = this.#last.keys().next()
    if (oldest.done !== true) {
      this.#last.delete(oldest.value)
      this.evicted++
    }
  }
}
