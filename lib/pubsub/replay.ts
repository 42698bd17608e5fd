/**
 * Last-value replays, bounded: what a subscribe message may cost a publisher.
 *
 * ```
 *   subscribe P ──► P queued? ─yes─► coalesced (the queued pass serves it)
 *                      │ no
 *                      ▼
 *                  P running or ran < intervalMs ago? ─yes─► one more pass, when the interval ends
 *                      │ no
 *                      ▼
 *                  queue a pass over the streams P names ──► slices of <= sliceMs, a yield between
 *                                                            slices, a pause while the send queue
 *                                                            holds more than maxQueuedBytes
 * ```
 * Only subscriptions a zrpc subscriber makes are answered: `name 00` (one topic's streams) or
 * `name 00 key 00` (one stream), so one pass costs at most one topic's streams, and any number of
 * identical subscribe messages cost at most one pass per `intervalMs` per prefix. A replay sent
 * after the subscribe was read reaches its subscriber (libzmq applies a subscription before the
 * publisher reads it), so coalescing never leaves a late joiner without its value.
 */
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises'

/** A cached stream as the publisher keeps it. */
export interface CachedStream {
  readonly frame: Buffer
  /** The last envelope sent, undefined until a message is published on it. */
  last: Buffer | undefined
}

/** What the replayer needs from the publisher. */
export interface ReplayHost {
  /** The streams of one topic, by key; undefined when the topic has none. */
  streams(topic: string): ReadonlyMap<string, CachedStream> | undefined
  /** Queues one replayed message; false when the send queue refused it. */
  send(frame: Buffer, envelope: Buffer): boolean
  /** Bytes waiting in the send queue now. */
  queuedBytes(): number
}

/** Bounds of {@link Replayer}; each has a default. */
export interface ReplayLimits {
  /** A prefix replayed again within this long waits for its end, coalesced (default 100 ms). */
  readonly intervalMs?: number
  /** Longest stretch of replaying before yielding to the event loop (default 5 ms). */
  readonly sliceMs?: number
  /** Pause replaying while the send queue holds more than this (default 8 MiB). */
  readonly maxQueuedBytes?: number
  /** Distinct prefixes queued, running or waiting out their interval; past it a subscribe gets no replay, counted (default 10 000). */
  readonly maxPending?: number
}

/** What replaying did, for {@link PublisherStats}. */
export interface ReplayCounters {
  /** Cached messages sent again. */
  replayed: number
  /** Passes over a prefix's streams. */
  replayPasses: number
  /** Subscribe messages served by a pass already queued or due: no pass of their own. */
  replaysCoalesced: number
  /** Subscribe messages that got no replay: not a zrpc subscription prefix, or too many prefixes pending. */
  replaysRefused: number
  /** Replayed messages the send queue refused. */
  replaysDropped: number
}

interface Job {
  readonly prefix: Buffer
  state: 'queued' | 'running' | 'resting'
  /** Another subscribe arrived while running or resting: one more pass is due. */
  again: boolean
  timer: NodeJS.Timeout | undefined
}

export const REPLAY_DEFAULTS = { intervalMs: 100, sliceMs: 5, maxQueuedBytes: 8 * 1024 * 1024, maxPending: 10_000 } as const

/** Runs last-value replays one pass at a time, within the bounds above. */
export class Replayer {
  readonly #jobs = new Map<string, Job>()
  readonly #queue: Job[] = []
  readonly #limits: Required<ReplayLimits>
  #running = false
  #closed = false

  constructor(
    private readonly host: ReplayHost,
    private readonly counters: ReplayCounters,
    limits: ReplayLimits = {},
  ) {
    this.#limits = { ...REPLAY_DEFAULTS, ...limits }
  }

  /** A subscribe message for `prefix` arrived. */
  subscribed(prefix: Buffer): void {
    if (this.#closed) return
    if (!isTopicPrefix(prefix)) return void this.counters.replaysRefused++
    const id = prefix.toString('latin1')
    const job = this.#jobs.get(id)
    if (job !== undefined) {
      if (job.state === 'queued' || job.again) this.counters.replaysCoalesced++
      else job.again = true
      return
    }
    if (this.#jobs.size >= this.#limits.maxPending) return void this.counters.replaysRefused++
    // A copy: the received frame may be a view into a larger buffer that would stay alive with it.
    const fresh: Job = { prefix: Buffer.from(prefix), state: 'queued', again: false, timer: undefined }
    this.#jobs.set(id, fresh)
    this.#enqueue(fresh)
  }

  /** Stops: pending passes are dropped, timers cleared. */
  close(): void {
    this.#closed = true
    for (const job of this.#jobs.values()) clearTimeout(job.timer)
    this.#jobs.clear()
    this.#queue.length = 0
  }

  #enqueue(job: Job): void {
    job.state = 'queued'
    job.again = false
    this.#queue.push(job)
    if (this.#running) return
    this.#running = true
    // Starts on the next turn: subscribe messages read in this one (a burst) join the queued pass.
    setImmediate(() => void this.#run())
  }

  async #run(): Promise<void> {
    try {
      for (let job = this.#queue.shift(); job !== undefined && !this.#closed; job = this.#queue.shift()) {
        job.state = 'running'
        this.counters.replayPasses++
        await this.#pass(job.prefix)
        this.#rest(job)
      }
    } finally {
      this.#running = false
    }
  }

  /** After a pass, the prefix rests for `intervalMs`; a subscribe meanwhile earns one more pass after it. */
  #rest(job: Job): void {
    if (this.#closed) return
    job.state = 'resting'
    job.timer = setTimeout(() => {
      job.timer = undefined
      if (this.#closed) return
      if (job.again) this.#enqueue(job)
      else this.#jobs.delete(job.prefix.toString('latin1'))
    }, this.#limits.intervalMs)
    job.timer.unref()
  }

  async #pass(prefix: Buffer): Promise<void> {
    const nul = prefix.indexOf(0)
    const keys = this.host.streams(prefix.toString('utf8', 0, nul))
    if (keys === undefined) return
    // `name 00 key 00` names one stream: one lookup, no scan.
    if (nul < prefix.length - 1) {
      const stream = keys.get(prefix.toString('utf8', nul + 1, prefix.length - 1))
      if (stream !== undefined) this.#replay(stream)
      return
    }
    let sliceStart = performance.now()
    let n = 0
    // A Map iterator stays valid while keys are added: streams published meanwhile are replayed too.
    for (const stream of keys.values()) {
      if (this.#closed) return
      this.#replay(stream)
      if (++n % 64 !== 0) continue
      while (this.host.queuedBytes() > this.#limits.maxQueuedBytes && !this.#closed) await sleep(1)
      if (performance.now() - sliceStart >= this.#limits.sliceMs) {
        await nextTurn()
        sliceStart = performance.now()
      }
    }
  }

  #replay(stream: CachedStream): void {
    if (stream.last === undefined) return
    this.counters.replayed++
    // Subscribers that already have it drop it as a duplicate (same sequence number).
    if (!this.host.send(stream.frame, stream.last)) this.counters.replaysDropped++
  }
}

/** `name 00` or `name 00 key 00`, with a name: the prefixes zrpc subscribers send. */
export function isTopicPrefix(prefix: Buffer): boolean {
  const first = prefix.indexOf(0)
  if (first <= 0) return false
  if (first === prefix.length - 1) return true
  return prefix.indexOf(0, first + 1) === prefix.length - 1
}
