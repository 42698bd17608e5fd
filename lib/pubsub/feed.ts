/**
 * A bounded async iterator: the receive loop pushes, one consumer pulls. When the consumer falls
 * behind by `size` messages the oldest is dropped for the newest (freshness over completeness),
 * and counted.
 */
export class Feed<T> implements AsyncIterableIterator<T> {
  /** Messages lost because the buffer was full. */
  dropped = 0
  readonly #queue: T[] = []
  #head = 0
  readonly #readers: Array<(result: IteratorResult<T, undefined>) => void> = []
  #ended = false

  constructor(
    private readonly size: number,
    private readonly onEnd: () => void,
  ) {}

  /** Messages waiting to be read. */
  get buffered(): number {
    return this.#queue.length - this.#head
  }

  get ended(): boolean {
    return this.#ended
  }

  /** Hands `value` to a waiting reader or buffers it; true when that dropped the oldest. */
  push(value: T): boolean {
    const reader = this.#readers.shift()
    if (reader !== undefined) {
      reader({ value, done: false })
      return false
    }
    const full = this.buffered >= this.size
    if (full) {
      this.#head++
      this.dropped++
      this.#compact()
    }
    this.#queue.push(value)
    return full
  }

  next(): Promise<IteratorResult<T, undefined>> {
    if (this.#head < this.#queue.length) {
      const value = this.#queue[this.#head++] as T
      this.#compact()
      return Promise.resolve({ value, done: false })
    }
    if (this.#ended) return Promise.resolve({ value: undefined, done: true })
    return new Promise((resolve) => this.#readers.push(resolve))
  }

  return(): Promise<IteratorResult<T, undefined>> {
    this.end()
    return Promise.resolve({ value: undefined, done: true })
  }

  /** Ends the iterator: buffered messages are discarded, waiting readers get done. */
  end(): void {
    if (this.#ended) return
    this.#ended = true
    this.#queue.length = 0
    this.#head = 0
    for (const reader of this.#readers.splice(0)) reader({ value: undefined, done: true })
    this.onEnd()
  }

  // Compacts now and then instead of shift() per message, which is O(n) on a long queue.
  #compact(): void {
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0
      this.#head = 0
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#head)
      this.#head = 0
    }
  }

  [Symbol.asyncIterator](): this {
    return this
  }
}
