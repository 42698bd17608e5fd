/**
 * The topic proxy behind `zrpc proxy`: publishers connect to its XSUB side, subscribers to its XPUB
 * side, and neither needs the other's endpoints.
 *
 * ```
 *   publishers ──messages──► XSUB (upstream) ──► size check ──► XPUB (downstream) ──► subscribers
 *              ◄─subscribe── XSUB            ◄── subscription bound ◄── XPUB      ◄── 01 prefix / 00 prefix
 * ```
 * Both sides are TransportSockets: two receive loops, two send queues bounded in bytes. It bounds
 * what a peer can make it hold: a message over `maxMessageSize` is dropped (libzmq drops the
 * connection of a publisher whose frame is larger; the proxy drops a multipart message whose frames
 * add up to more), a subscribe message over `maxSubscriptionBytes` ends that subscriber's
 * connection, and past `maxSubscriptions` distinct prefixes new ones are not passed upstream.
 * It reads no envelope.
 */
import { DEFAULT_CBOR_LIMITS } from '../codec/cbor.js'
import type { CurveOptions } from '../transport/curve.js'
import { SocketSecurity } from '../transport/security.js'
import { TransportSocket } from '../transport/socket.js'
import { DEFAULT_MAX_SUBSCRIPTION_BYTES } from './publisher.js'

/** Options for {@link TopicProxy}; each has a default. */
export interface TopicProxyOptions {
  /** Largest message passed down, all frames together, in bytes (default 4 MiB, the subscribers' default). */
  readonly maxMessageSize?: number
  /** Distinct subscription prefixes passed upstream at once (default 10 000); past it new ones are dropped, counted. */
  readonly maxSubscriptions?: number
  /** Longest subscribe message accepted from a subscriber (default 1 KiB); libzmq drops the connection of one that sends longer. */
  readonly maxSubscriptionBytes?: number
  /** Messages queued per subscriber before libzmq drops new ones (default 1000). */
  readonly sendHighWaterMark?: number
  /**
   * Pass every subscribe upstream, not only the first per prefix (default true), so a publisher's
   * last-value cache answers each late joiner, and a prefix refused while full is offered again.
   */
  readonly verbose?: boolean
  /**
   * CURVE on both sides (docs/security.md): `{ publicKey, secretKey, allow? }`; `allow` holds the
   * publishers' and subscribers' public keys alike.
   */
  readonly curve?: CurveOptions
  /** Called for each peer the allow list refuses, with its key (Z85) and address. */
  readonly onRefused?: (publicKey: string, address: string) => void
}

/** What a {@link TopicProxy} passed and dropped. */
export interface TopicProxyStats {
  /** Messages passed down. */
  messages: number
  /** Subscribe and unsubscribe messages passed up. */
  subscriptions: number
  unsubscriptions: number
  /** Messages dropped: larger than maxMessageSize in total. */
  oversized: number
  /** Publisher connections that ended (libzmq ends one that sends a frame over maxMessageSize). */
  publisherDisconnects: number
  /** Subscribe messages dropped: a new prefix while maxSubscriptions are in use. */
  subscriptionsRefused: number
  /** Messages a send queue refused (full or closed). */
  dropped: number
  /** Distinct prefixes subscribed now. */
  prefixes: number
}

const SUBSCRIBE = 1
const UNSUBSCRIBE = 0

/**
 * An XSUB/XPUB proxy with bounds, for typed topics (and any ZeroMQ PUB/SUB traffic).
 *
 * @example
 * const proxy = new TopicProxy()
 * const { frontend, backend } = await proxy.bind('tcp://127.0.0.1:5556', 'tcp://127.0.0.1:5557')
 * // publishers connect to frontend, subscribers to backend
 * await proxy.close()
 */
export class TopicProxy {
  readonly #stats: TopicProxyStats = { messages: 0, subscriptions: 0, unsubscriptions: 0, oversized: 0, publisherDisconnects: 0, subscriptionsRefused: 0, dropped: 0, prefixes: 0 }
  readonly #upstream: TransportSocket
  readonly #downstream: TransportSocket
  /** Distinct prefixes passed upstream (latin1), as the XPUB reports them: added on subscribe, removed on the last unsubscribe. */
  readonly #prefixes = new Set<string>()
  readonly #maxMessageSize: number
  readonly #maxSubscriptions: number

  readonly #security: SocketSecurity

  constructor(options: TopicProxyOptions = {}) {
    this.#security = SocketSecurity.for(options.curve, 'TopicProxy', 'bind', options.onRefused)
    this.#maxMessageSize = options.maxMessageSize ?? DEFAULT_CBOR_LIMITS.maxBytes
    this.#maxSubscriptions = Math.max(1, options.maxSubscriptions ?? 10_000)
    this.#upstream = new TransportSocket(
      {
        type: 'xsub',
        maxMessageSize: this.#maxMessageSize,
        coalesce: false,
        lingerMs: 0,
        // Subscriptions up are small and bounded in number; a flood of them must not drop a late
        // subscriber's one at the high-water mark.
        socketOptions: { sendHighWaterMark: 2 * this.#maxSubscriptions, receiveHighWaterMark: 1000, ...this.#security.socketOptions },
      },
      { onMessage: (frames) => this.#down(frames) },
    )
    this.#downstream = new TransportSocket(
      {
        type: 'xpub',
        // What an XPUB receives is subscribe messages: the libzmq limit applies to those.
        maxMessageSize: options.maxSubscriptionBytes ?? DEFAULT_MAX_SUBSCRIPTION_BYTES,
        coalesce: false,
        lingerMs: 0,
        socketOptions: {
          sendHighWaterMark: Math.max(1, options.sendHighWaterMark ?? 1000),
          receiveHighWaterMark: 10_000,
          ...(options.verbose === false ? {} : { verbosity: 'allSubs' }),
          ...this.#security.socketOptions,
        },
      },
      { onMessage: ([frame]) => this.#up(frame) },
    )
  }

  /** Counters; `publisherDisconnects` is read from the publisher-side socket. */
  get stats(): TopicProxyStats {
    return { ...this.#stats, publisherDisconnects: this.#upstream.counters.disconnects }
  }

  /** Binds the frontend (for publishers) and the backend (for subscribers); returns them resolved. */
  async bind(frontend: string, backend: string): Promise<{ frontend: string; backend: string }> {
    await this.#security.ready()
    const bound = { frontend: await this.#upstream.bind(frontend), backend: await this.#downstream.bind(backend) }
    this.#security.bound(bound.frontend)
    this.#security.bound(bound.backend)
    return bound
  }

  /** Closes both sides; resolves when both receive loops have stopped. */
  async close(): Promise<void> {
    await Promise.all([this.#upstream.close(), this.#downstream.close()])
    await this.#security.close()
  }

  #down(frames: Buffer[]): void {
    let bytes = 0
    for (const frame of frames) bytes += frame.length
    if (bytes > this.#maxMessageSize || frames.length === 0) return void this.#stats.oversized++
    if (this.#downstream.pushWithHead(frames.slice(0, -1), frames[frames.length - 1]!)) this.#stats.messages++
    else this.#stats.dropped++
  }

  #up(frame: Buffer | undefined): void {
    if (frame === undefined || frame.length === 0) return
    const id = frame.toString('latin1', 1)
    if (frame[0] === SUBSCRIBE) {
      if (!this.#prefixes.has(id)) {
        if (this.#prefixes.size >= this.#maxSubscriptions) return void this.#stats.subscriptionsRefused++
        this.#prefixes.add(id)
      }
      this.#stats.subscriptions++
    } else if (frame[0] === UNSUBSCRIBE) {
      // Not passed up: a prefix refused while full, so the publishers never had it.
      if (!this.#prefixes.delete(id)) return
      this.#stats.unsubscriptions++
    } else return
    this.#stats.prefixes = this.#prefixes.size
    if (!this.#upstream.push(frame)) this.#stats.dropped++
  }
}
