/**
 * One writer per socket: zeromq.js allows a single pending `send()`, and a second one throws EBUSY
 * synchronously. Every sender pushes here; one pump awaits the socket.
 *
 * While a send is in flight, and for one event-loop turn after it, new messages wait. Then everything
 * that waited goes out as few messages as possible: bodies for the same peer are joined into one
 * frame (up to `maxFrameBytes`), which is legal because a zrpc frame is a CBOR sequence of envelopes.
 * Per-message cost in zeromq.js dominates (one promise and one N-API crossing per send), so this is
 * where throughput under load comes from.
 *
 * Memory is bounded in bytes: what waits here is at most `maxQueuedBytes`. On a ROUTER that fails
 * sends at once instead of waiting (`parkSlowPeers`), a message for a peer whose libzmq queue is full
 * is parked for that peer, at most `maxParkedBytesPerPeer`, and retried shortly; past that the peer's
 * oldest messages are dropped and counted. A peer that does not read loses its own messages and
 * never blocks, or holds memory for, the others.
 *
 * Ownership: a body handed to {@link SendQueue.push} belongs to the queue; the caller must never
 * write to it again. zeromq.js does not copy frames over 128 bytes until its I/O thread sent them.
 */

/**
 * A body written straight into the frame it leaves in, instead of a Buffer made for it up front:
 * a sender that joins many small envelopes saves a Buffer and a copy per envelope.
 */
export interface LazyBody {
  /** Bytes {@link LazyBody.writeTo} writes. */
  readonly byteLength: number
  /** Writes the body at `pos` of `out` (which has `byteLength` bytes free there) and returns the position after it. */
  writeTo(out: Buffer, pos: number): number
}

/** What a message carries after its head: bytes, or bytes still to be written. */
export type Body = Buffer | LazyBody

/** The part of a zeromq.js socket the queue needs. */
export interface FrameSink {
  send(message: Buffer | Buffer[]): Promise<void>
  readonly closed: boolean
}

export interface SendQueueOptions {
  /** Join queued bodies for the same peer into one frame (default true). */
  readonly coalesce?: boolean
  /** Largest joined frame in bytes; a single larger body still goes out alone (default 64 KiB). */
  readonly maxFrameBytes?: number
  /** Messages that may wait behind the pump; past this {@link SendQueue.push} refuses (default 100 000). */
  readonly maxQueued?: number
  /** Bytes that may wait behind the pump, parked ones included; past this push refuses (default 64 MiB). */
  readonly maxQueuedBytes?: number
  /**
   * The sink is a ROUTER that rejects a send at once (EAGAIN) when one peer's queue is full: park
   * that peer's messages instead of dropping them, and drop (counted) those for vanished peers (EHOSTUNREACH).
   */
  readonly parkSlowPeers?: boolean
  /** Bytes parked for one peer before its oldest are dropped (default 8 MiB). */
  readonly maxParkedBytesPerPeer?: number
  /** Called with errors from the socket other than its closing and the two above; the message is dropped. */
  readonly onError?: (err: unknown) => void
}

interface Outgoing {
  /** ROUTER routing id, or undefined on a socket that has one peer per message (DEALER). */
  readonly to: Buffer | undefined
  readonly body: Body
  /** Frames sent between the routing id and the body (a Majordomo envelope). */
  readonly head?: readonly Buffer[] | undefined
  /** The body is a zrpc frame that may be joined with others for the same peer and the same `head` array. */
  readonly joinable: boolean
}

interface Parked {
  readonly to: Buffer
  readonly messages: Outgoing[]
  bytes: number
}

/** What a queue counts; exposed through the owner's stats. */
export interface SendQueueCounters {
  /** Messages handed to the socket, and frames that carried them (frames ≤ messages when coalescing). */
  messages: number
  frames: number
  /** Messages refused or lost: queue full, socket closed or failed. */
  dropped: number
  /** Messages for a peer that was gone (a ROUTER cannot route them). */
  unroutable: number
  /** Messages dropped because their peer did not read and its parking space was full. */
  slowPeerDrops: number
  /** Bytes waiting now, parked ones included. */
  queuedBytes: number
}

const DEFAULT_MAX_FRAME_BYTES = 64 * 1024
/** Longest wait between retries of parked messages; retries start on the next turn and back off while no peer drains. */
const MAX_RETRY_PARKED_MS = 20

export class SendQueue {
  private queue: Outgoing[] = []
  private readonly parked = new Map<string, Parked>()
  private pumping = false
  private cancelRetry: (() => void) | undefined
  private retryDelayMs = 0
  private idleWaiters: Array<() => void> = []
  private readonly coalesce: boolean
  private readonly maxFrameBytes: number
  private readonly maxQueued: number
  private readonly maxQueuedBytes: number
  private readonly maxParkedBytesPerPeer: number
  readonly counters: SendQueueCounters = { messages: 0, frames: 0, dropped: 0, unroutable: 0, slowPeerDrops: 0, queuedBytes: 0 }

  constructor(
    private readonly socket: FrameSink,
    private readonly options: SendQueueOptions = {},
  ) {
    this.coalesce = options.coalesce ?? true
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES
    this.maxQueued = options.maxQueued ?? 100_000
    this.maxQueuedBytes = options.maxQueuedBytes ?? 64 * 1024 * 1024
    this.maxParkedBytesPerPeer = options.maxParkedBytesPerPeer ?? 8 * 1024 * 1024
  }

  /** Messages waiting, not counting the one in flight or parked ones. */
  get length(): number {
    return this.queue.length
  }

  /** Queues one zrpc frame for `to` (a routing id) or for the socket's peer. False if the queue is full or the socket closed. */
  push(body: Body, to?: Buffer): boolean {
    return this.enqueue({ to, body, joinable: true })
  }

  /**
   * Queues one body preceded by `head` frames (for example `['', 'MDPC01', service]`), for `to` on a
   * ROUTER. With `joinable` the body is a zrpc frame, joined with the other joinable bodies for the
   * same peer behind the very same `head` array (callers reuse one array per route); otherwise the
   * message goes out alone, and the peer's messages queued after it stay after it.
   */
  pushWithHead(head: readonly Buffer[], body: Body, to?: Buffer, joinable = false): boolean {
    return this.enqueue({ to, body, head, joinable })
  }

  /** Resolves once nothing is queued or in flight (parked messages for slow peers do not count). */
  idle(): Promise<void> {
    if (!this.pumping) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  /** Forgets everything parked (the socket is closing). */
  clear(): void {
    this.cancelRetry?.()
    this.cancelRetry = undefined
    for (const p of this.parked.values()) this.counters.dropped += p.messages.length
    this.parked.clear()
    this.counters.queuedBytes = this.queue.reduce((n, m) => n + size(m), 0)
  }

  private enqueue(message: Outgoing): boolean {
    const bytes = size(message)
    if (this.counters.queuedBytes + bytes > this.maxQueuedBytes) this.evictParked(this.counters.queuedBytes + bytes - this.maxQueuedBytes)
    if (this.socket.closed || this.queue.length >= this.maxQueued || this.counters.queuedBytes + bytes > this.maxQueuedBytes) {
      this.counters.dropped++
      return false
    }
    this.counters.queuedBytes += bytes
    this.queue.push(message)
    if (!this.pumping) {
      this.pumping = true
      void this.pump()
    }
    return true
  }

  private async pump(): Promise<void> {
    try {
      while (this.queue.length > 0 && !this.socket.closed) {
        const batch = this.queue
        this.queue = []
        for (const message of batch) this.counters.queuedBytes -= size(message)
        for (const message of this.coalesce ? this.join(batch) : batch) await this.write(message)
        this.counters.messages += batch.length
        // A zeromq.js send below the high-water mark resolves at once, so waiting for it alone
        // gathers almost nothing. Waiting one event-loop turn lets every caller of this tick (all
        // the replies to one received frame, all the calls of one Promise.all) join the next frame.
        // The first message of a quiet spell still leaves at once: no latency is added to it.
        if (this.coalesce) await nextTurn()
      }
    } finally {
      this.pumping = false
      if (this.queue.length > 0) {
        this.counters.dropped += this.queue.length
        for (const message of this.queue) this.counters.queuedBytes -= size(message)
        this.queue = []
      }
      for (const resolve of this.idleWaiters.splice(0)) resolve()
    }
  }

  private async write(message: Outgoing): Promise<void> {
    // The peer's key is only needed once something is parked: most writes never build it.
    let key = message.to !== undefined && this.parked.size > 0 ? message.to.toString('latin1') : undefined
    // A peer with parked messages keeps its order: new ones wait behind them.
    if (key !== undefined && this.parked.has(key)) return this.park(key, message)
    try {
      await this.socket.send(frames(message))
      this.counters.frames++
    } catch (err) {
      if (this.socket.closed) return void this.counters.dropped++
      const code = (err as { code?: unknown }).code
      if (this.options.parkSlowPeers === true && message.to !== undefined && code === 'EAGAIN') {
        key ??= message.to.toString('latin1')
        return this.park(key, message)
      }
      if (code === 'EHOSTUNREACH') return void this.counters.unroutable++
      this.counters.dropped++
      this.options.onError?.(err)
    }
  }

  private park(key: string, message: Outgoing): void {
    let parked = this.parked.get(key)
    if (parked === undefined) {
      parked = { to: message.to!, messages: [], bytes: 0 }
      this.parked.set(key, parked)
    }
    const bytes = size(message)
    parked.messages.push(message)
    parked.bytes += bytes
    this.counters.queuedBytes += bytes
    while (parked.bytes > this.maxParkedBytesPerPeer && parked.messages.length > 1) this.dropOldest(key, parked)
    this.scheduleRetry()
  }

  private dropOldest(key: string, parked: Parked): void {
    const oldest = parked.messages.shift()!
    parked.bytes -= size(oldest)
    this.counters.queuedBytes -= size(oldest)
    this.counters.slowPeerDrops++
    if (parked.messages.length === 0) this.parked.delete(key)
  }

  /** Makes room for `bytes` by dropping parked messages, from the peer with the most parked first. */
  private evictParked(bytes: number): void {
    while (bytes > 0 && this.parked.size > 0) {
      let worst: [string, Parked] | undefined
      for (const entry of this.parked) if (worst === undefined || entry[1].bytes > worst[1].bytes) worst = entry
      const before = this.counters.queuedBytes
      this.dropOldest(worst![0], worst![1])
      bytes -= before - this.counters.queuedBytes
    }
  }

  /** Tries each slow peer's parked messages again, in order, until one is refused again. */
  private async retryParked(): Promise<void> {
    this.cancelRetry = undefined
    if (this.pumping) return this.scheduleRetry()
    this.pumping = true
    let progress = false
    try {
      for (const [key, parked] of [...this.parked]) {
        while (parked.messages.length > 0 && !this.socket.closed) {
          const message = parked.messages[0]!
          try {
            await this.socket.send(frames(message))
            this.counters.frames++
            this.counters.messages++
            progress = true
          } catch (err) {
            const code = (err as { code?: unknown }).code
            if (code === 'EAGAIN') break
            if (code === 'EHOSTUNREACH') this.counters.unroutable++
            else this.counters.dropped++
          }
          parked.messages.shift()
          parked.bytes -= size(message)
          this.counters.queuedBytes -= size(message)
        }
        if (parked.messages.length === 0) this.parked.delete(key)
      }
    } finally {
      this.pumping = false
    }
    if (this.queue.length > 0) {
      this.pumping = true
      void this.pump()
    } else {
      for (const resolve of this.idleWaiters.splice(0)) resolve()
    }
    // A peer that drained a little is usually reading (a burst met a small high-water mark): try again
    // on the next turn. One that took nothing is slow or gone: back off, up to MAX_RETRY_PARKED_MS.
    this.retryDelayMs = progress ? 0 : Math.min(MAX_RETRY_PARKED_MS, Math.max(1, this.retryDelayMs * 2))
    if (this.parked.size > 0 && !this.socket.closed) this.scheduleRetry()
  }

  private scheduleRetry(): void {
    if (this.cancelRetry !== undefined) return
    if (this.retryDelayMs === 0) {
      const handle = setImmediate(() => void this.retryParked())
      this.cancelRetry = () => clearImmediate(handle)
    } else {
      const handle = setTimeout(() => void this.retryParked(), this.retryDelayMs)
      this.cancelRetry = () => clearTimeout(handle)
    }
  }

  /**
   * Joins joinable bodies per peer and head. Order is kept per peer and head, and around a message
   * that may not be joined: what the peer gets after it is sent after it. Peers are
   * grouped by the routing id's Buffer (a listener hands the same one for every reply to a peer), and
   * by its bytes only when another Buffer shows up, so two Buffers naming one peer still share one
   * ordered group.
   */
  private join(batch: Outgoing[]): Outgoing[] {
    if (batch.length === 1) return batch
    const peers = new Map<Buffer | undefined, Peer>()
    let byBytes: Map<string, Peer> | undefined
    const groups: Group[] = []
    for (const message of batch) {
      const { to } = message
      let peer = peers.get(to)
      if (peer === undefined) {
        if (to !== undefined && peers.size > 0) {
          if (byBytes === undefined) {
            byBytes = new Map()
            for (const [id, p] of peers) if (id !== undefined) byBytes.set(id.toString('latin1'), p)
          }
          const key = to.toString('latin1')
          peer = byBytes.get(key)
          if (peer === undefined) {
            peer = { open: [] }
            byBytes.set(key, peer)
          }
        } else peer = { open: [] }
        peers.set(to, peer)
      }
      if (!message.joinable) {
        peer.open = []
        groups.push({ first: message, bodies: undefined })
        continue
      }
      let group: Group | undefined
      for (const g of peer.open) if (g.first.head === message.head) group = g
      if (group === undefined) {
        group = { first: message, bodies: [message.body] }
        peer.open.push(group)
        groups.push(group)
      } else group.bodies!.push(message.body)
    }
    const out: Outgoing[] = []
    for (const { first, bodies } of groups) {
      if (bodies === undefined || bodies.length === 1) {
        out.push(first)
        continue
      }
      let from = 0
      let runBytes = 0
      for (let i = 0; i < bodies.length; i++) {
        const length = bodies[i]!.byteLength
        if (i > from && runBytes + length > this.maxFrameBytes) {
          out.push({ to: first.to, head: first.head, body: joined(bodies, from, i, runBytes), joinable: true })
          from = i
          runBytes = 0
        }
        runBytes += length
      }
      out.push({ to: first.to, head: first.head, body: joined(bodies, from, bodies.length, runBytes), joinable: true })
    }
    return out
  }
}

/** One peer's groups that later joinable messages may still join. */
interface Peer {
  open: Group[]
}

/** Messages sent as one: a joinable run (`bodies`), or one message alone (`bodies` undefined). */
interface Group {
  readonly first: Outgoing
  readonly bodies: Body[] | undefined
}

/** `bodies[from..to)` written into one Buffer of `bytes` bytes (a Buffer body itself when it is alone). */
function joined(bodies: Body[], from: number, to: number, bytes: number): Buffer {
  if (to - from === 1) return bytesOf(bodies[from]!)
  const out = Buffer.allocUnsafe(bytes)
  let pos = 0
  for (let i = from; i < to; i++) {
    const body = bodies[i]!
    if (body instanceof Uint8Array) {
      out.set(body, pos)
      pos += body.length
    } else pos = body.writeTo(out, pos)
  }
  return out
}

/** A body as bytes: a lazy one is written into a Buffer of its own. */
export function bytesOf(body: Body): Buffer {
  if (body instanceof Uint8Array) return body
  const out = Buffer.allocUnsafe(body.byteLength)
  body.writeTo(out, 0)
  return out
}

function size(message: Outgoing): number {
  let n = message.body.byteLength
  if (message.head !== undefined) for (const h of message.head) n += h.length
  return n
}

function frames(message: Outgoing): Buffer | Buffer[] {
  const { to, head } = message
  const body = bytesOf(message.body)
  if (head !== undefined) return [...(to === undefined ? [] : [to]), ...head, body]
  return to === undefined ? body : [to, body]
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
