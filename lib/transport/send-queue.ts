/**
 * One writer per socket: zeromq.js allows a single pending `send()`, and a second one throws EBUSY
 * synchronously. Every sender pushes here; one pump awaits the socket.
 *
 * While a send is in flight, and for one event-loop turn after it, new messages wait. Then everything
 * that waited goes out as few messages as possible: bodies for the same peer are joined into one
 * frame, which is legal because a zrpc frame is a CBOR sequence of envelopes. Per-message cost in zeromq.js dominates
 * (one promise and one N-API crossing per send), so this is where throughput under load comes from.
 *
 * Ownership: a body handed to {@link SendQueue.push} belongs to the queue; the caller must never
 * write to it again. zeromq.js does not copy frames over 128 bytes until its I/O thread sent them.
 */

/** The part of a zeromq.js socket the queue needs. */
export interface FrameSink {
  send(message: Buffer | Buffer[]): Promise<void>
  readonly closed: boolean
}

export interface SendQueueOptions {
  /** Join queued bodies for the same peer into one frame (default true). */
  readonly coalesce?: boolean
  /** Largest joined frame in bytes; a single larger body still goes out alone. */
  readonly maxFrameBytes?: number
  /** Messages that may wait behind the pump; past this {@link SendQueue.push} refuses. */
  readonly maxQueued?: number
  /** Called with errors from the socket other than its closing; the message is dropped. */
  readonly onError?: (err: unknown) => void
}

interface Outgoing {
  /** ROUTER routing id, or undefined on a socket that has one peer per message (DEALER). */
  readonly to: Buffer | undefined
  readonly body: Buffer
  /** Frames sent between the routing id and the body (a Majordomo envelope); such messages are never joined. */
  readonly head?: readonly Buffer[] | undefined
}

export class SendQueue {
  private queue: Outgoing[] = []
  private pumping = false
  private idleWaiters: Array<() => void> = []
  private readonly coalesce: boolean
  private readonly maxFrameBytes: number
  private readonly maxQueued: number
  /** Messages handed to the socket, and frames that carried them (frames ≤ messages when coalescing). */
  readonly counters = { messages: 0, frames: 0, dropped: 0 }

  constructor(
    private readonly socket: FrameSink,
    private readonly options: SendQueueOptions = {},
  ) {
    this.coalesce = options.coalesce ?? true
    this.maxFrameBytes = options.maxFrameBytes ?? 256 * 1024
    this.maxQueued = options.maxQueued ?? 100_000
  }

  /** Messages waiting, not counting the one in flight. */
  get length(): number {
    return this.queue.length
  }

  /** Queues one body for `to` (a routing id) or for the socket's peer. False if the queue is full or the socket closed. */
  push(body: Buffer, to?: Buffer): boolean {
    if (this.socket.closed || this.queue.length >= this.maxQueued) {
      this.counters.dropped++
      return false
    }
    this.queue.push({ to, body })
    if (!this.pumping) {
      this.pumping = true
      void this.pump()
    }
    return true
  }

  /**
   * Queues one body preceded by `head` frames (for example `['', 'MDPC01', service]`). Such a message
   * always goes out alone: the envelope belongs to exactly one body.
   */
  pushWithHead(head: readonly Buffer[], body: Buffer): boolean {
    if (this.socket.closed || this.queue.length >= this.maxQueued) {
      this.counters.dropped++
      return false
    }
    this.queue.push({ to: undefined, body, head })
    if (!this.pumping) {
      this.pumping = true
      void this.pump()
    }
    return true
  }

  /** Resolves once nothing is queued or in flight. */
  idle(): Promise<void> {
    if (!this.pumping) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  private async pump(): Promise<void> {
    try {
      while (this.queue.length > 0 && !this.socket.closed) {
        const batch = this.queue
        this.queue = []
        for (const message of this.coalesce ? this.join(batch) : batch) {
          await this.write(message)
        }
        this.counters.messages += batch.length
        // A zeromq.js send below the high-water mark resolves at once, so waiting for it alone
        // gathers almost nothing. Waiting one event-loop turn lets every caller of this tick (all
        // the replies to one received frame, all the calls of one Promise.all) join the next frame.
        // The first message of a quiet spell still leaves at once: no latency is added to it.
        if (this.coalesce) await nextTurn()
      }
    } finally {
      this.pumping = false
      if (this.queue.length > 0) this.counters.dropped += this.queue.length
      this.queue = []
      for (const resolve of this.idleWaiters.splice(0)) resolve()
    }
  }

  private async write(message: Outgoing): Promise<void> {
    try {
      const { to, body, head } = message
      await this.socket.send(head !== undefined ? [...(to === undefined ? [] : [to]), ...head, body] : to === undefined ? body : [to, body])
      this.counters.frames++
    } catch (err) {
      this.counters.dropped++
      // A socket closed under a pending send rejects it; that is shutdown, not a fault.
      if (!this.socket.closed) this.options.onError?.(err)
    }
  }

  /** Joins bodies per peer, keeping the order of each peer's messages. */
  private join(batch: Outgoing[]): Outgoing[] {
    if (batch.length === 1 || batch.some((m) => m.head !== undefined)) return batch
    const groups = new Map<string, Buffer[]>()
    const targets = new Map<string, Buffer | undefined>()
    for (const { to, body } of batch) {
      const key = to === undefined ? '' : to.toString('latin1')
      let bodies = groups.get(key)
      if (bodies === undefined) {
        bodies = []
        groups.set(key, bodies)
        targets.set(key, to)
      }
      bodies.push(body)
    }
    const out: Outgoing[] = []
    for (const [key, bodies] of groups) {
      const to = targets.get(key)
      let run: Buffer[] = []
      let runBytes = 0
      for (const body of bodies) {
        if (run.length > 0 && runBytes + body.length > this.maxFrameBytes) {
          out.push({ to, body: run.length === 1 ? run[0]! : Buffer.concat(run, runBytes) })
          run = []
          runBytes = 0
        }
        run.push(body)
        runBytes += body.length
      }
      if (run.length > 0) out.push({ to, body: run.length === 1 ? run[0]! : Buffer.concat(run, runBytes) })
    }
    return out
  }
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
