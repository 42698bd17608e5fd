/**
 * The typed publisher: validates, stamps publisher id and sequence number, sends on an XPUB socket
 * (a TransportSocket), and with the last-value cache answers new subscriptions from the cache.
 */
import { randomBytes } from 'node:crypto'
import { DEFAULT_CBOR_LIMITS, encodeCbor } from '../codec/cbor.js'
import { RpcError } from '../errors.js'
import type { CurveOptions } from '../transport/curve.js'
import { SocketSecurity } from '../transport/security.js'
import { TransportSocket } from '../transport/socket.js'
import { encodeTopicEnvelope, PUBLISHER_ID_BYTES } from './frame.js'
import { Replayer, type CachedStream, type ReplayCounters, type ReplayLimits } from './replay.js'
import { checkerFor, checkKey, streamFrame, type DataOf, type TopicDefinition } from './topic.js'

/** Longest subscribe message a publisher or proxy accepts by default: `name 00 key 00` is at most 386 bytes. */
export const DEFAULT_MAX_SUBSCRIPTION_BYTES = 1024

/** Options for {@link Publisher}. */
export interface PublisherOptions {
  /** Endpoints to connect to now, e.g. a proxy's publisher side. */
  readonly connect?: string | readonly string[]
  /** Messages queued per subscriber before libzmq drops new ones, silently (default 1000). */
  readonly sendHighWaterMark?: number
  /**
   * Largest message (both frames) published, in bytes (default 4 MiB, the subscribers' default):
   * a larger one is refused with RESOURCE_EXHAUSTED, since it would end every subscriber connection it reached.
   */
  readonly maxMessageSize?: number
  /** Longest subscribe message accepted (default 1 KiB); libzmq drops the connection of a peer that sends a longer one. */
  readonly maxSubscriptionBytes?: number
  /**
   * Keep the last message of every stream and send it again when a subscription for it arrives,
   * so late joiners start with the current value (default false). Sets XPUB verbose mode, so every
   * subscribe is seen, not just the first per prefix.
   */
  readonly lastValueCache?: boolean
  /** Bounds on what replays of the cache may cost (see docs/protocol.md section 7). */
  readonly replay?: ReplayLimits
  /**
   * CURVE (docs/security.md): `{ publicKey, secretKey, allow? }` for the endpoints it binds, or, to
   * connect to a CURVE peer (a proxy), `{ serverKey, publicKey, secretKey }`.
   */
  readonly curve?: CurveOptions
  /** Called for each peer the allow list refuses, with its key (Z85) and address. */
  readonly onRefused?: (publicKey: string, address: string) => void
}

/** Per-message options of {@link Publisher.publish}. */
export interface PublishOptions {
  /** The stream within the topic; subscribers may filter on it. Default '' (no key). */
  readonly key?: string
}

/** What a {@link Publisher} has done. */
export interface PublisherStats extends ReplayCounters {
  published: number
  /** Subscribe frames seen: counted with the cache on (every one, XPUB verbose), else 0. */
  subscriptions: number
  /** Publishes refused: over maxMessageSize, or the send queue full. */
  refused: number
}

interface Stream extends CachedStream {
  seq: number
}

/**
 * Publishes typed messages on topics.
 *
 * With `lastValueCache` its XPUB is verbose: it sees every subscription arriving, and answers each
 * from the cache, within the bounds of {@link ReplayLimits}.
 * Delivery is best effort, as with any ZeroMQ PUB: see the README's PUB/SUB limits.
 *
 * @example
 * const pub = new Publisher()
 * const [endpoint] = await pub.bind('tcp://127.0.0.1:*')
 * await pub.publish(Prices, { sym: 'AAPL', px: 1 }, { key: 'AAPL' })
 * await pub.close()
 */
export class Publisher {
  /** Random per instance: a restarted publisher is a new stream, not a gap. */
  readonly id: Buffer = randomBytes(PUBLISHER_ID_BYTES)
  readonly stats: PublisherStats = {
    published: 0,
    subscriptions: 0,
    refused: 0,
    replayed: 0,
    replayPasses: 0,
    replaysCoalesced: 0,
    replaysRefused: 0,
    replaysDropped: 0,
  }
  readonly #socket: TransportSocket
  /** Per topic name, per key: two lookups instead of building a key string per message. */
  readonly #streams = new Map<string, Map<string, Stream>>()
  readonly #replayer: Replayer | undefined
  readonly #maxMessageSize: number
  #closed = false

  readonly #security: SocketSecurity

  constructor(options: PublisherOptions = {}) {
    this.#maxMessageSize = options.maxMessageSize ?? DEFAULT_CBOR_LIMITS.maxBytes
    const cache = options.lastValueCache === true
    this.#replayer = cache
      ? new Replayer(
          {
            streams: (topic) => (topic.startsWith('$') ? undefined : this.#streams.get(topic)),
            send: (frame, envelope) => this.#socket.pushWithHead([frame], envelope),
            queuedBytes: () => this.#socket.counters.send.queuedBytes,
          },
          this.stats,
          options.replay,
        )
      : undefined
    this.#security = SocketSecurity.for(options.curve, 'Publisher', 'either', options.onRefused)
    this.#socket = new TransportSocket(
      {
        type: 'xpub',
        // What an XPUB receives is subscribe messages: the libzmq limit applies to those.
        maxMessageSize: options.maxSubscriptionBytes ?? DEFAULT_MAX_SUBSCRIPTION_BYTES,
        lingerMs: 0,
        coalesce: false,
        socketOptions: {
          sendHighWaterMark: Math.max(1, options.sendHighWaterMark ?? 1000),
          receiveHighWaterMark: 10_000,
          ...(cache ? { verbosity: 'allSubs' } : {}),
          ...this.#security.socketOptions,
        },
      },
      { onMessage: ([frame]) => this.#onSubscription(frame) },
    )
    for (const endpoint of toList(options.connect)) this.#socket.connect(endpoint)
  }

  /** Binds to each endpoint and returns the resolved ones (ports filled in). */
  async bind(endpoints: string | readonly string[]): Promise<string[]> {
    await this.#security.ready()
    const bound: string[] = []
    for (const endpoint of toList(endpoints)) bound.push(await this.#socket.bind(endpoint))
    for (const endpoint of bound) this.#security.bound(endpoint)
    return bound
  }

  /** Connects, e.g. to the publisher side (XSUB) of a `zrpc proxy`. */
  connect(endpoints: string | readonly string[]): void {
    for (const endpoint of toList(endpoints)) this.#socket.connect(endpoint)
  }

  /**
   * Validates and queues one message. Throws RpcError at once (synchronously), and sends nothing:
   * INVALID_ARGUMENT for data that does not match the topic's schema or a bad key,
   * RESOURCE_EXHAUSTED for a message over `maxMessageSize` or a full send queue,
   * FAILED_PRECONDITION after close. The returned promise resolves once queued, which is not delivery.
   */
  publish<T extends TopicDefinition>(topic: T, data: DataOf<T>, options: PublishOptions = {}): Promise<void> {
    const key = options.key ?? ''
    const invalid = checkerFor(topic)(data)
    if (invalid !== undefined) throw invalid
    if (this.#closed) throw new RpcError('FAILED_PRECONDITION', 'publisher is closed')
    let keys = this.#streams.get(topic.name)
    let stream = keys?.get(key)
    if (stream === undefined) checkKey(key)
    const frame = stream?.frame ?? streamFrame(topic.name, key)
    const envelope = encodeTopicEnvelope(this.id, (stream?.seq ?? 0) + 1, encodeCbor(data))
    if (frame.length + envelope.length > this.#maxMessageSize) {
      this.stats.refused++
      throw new RpcError(
        'RESOURCE_EXHAUSTED',
        `message on topic ${topic.name} is ${frame.length + envelope.length} bytes, over the publisher's maxMessageSize of ${this.#maxMessageSize}: subscribers would drop the connection`,
      )
    }
    if (stream === undefined) {
      if (keys === undefined) this.#streams.set(topic.name, (keys = new Map()))
      stream = { frame, seq: 0, last: undefined }
      keys.set(key, stream)
    }
    stream.seq++
    if (this.#replayer !== undefined && !topic.name.startsWith('$')) stream.last = envelope
    if (!this.#socket.pushWithHead([frame], envelope)) {
      this.stats.refused++
      throw new RpcError('RESOURCE_EXHAUSTED', `publisher send queue is full (topic ${topic.name}): publish more slowly`)
    }
    this.stats.published++
    return Promise.resolve()
  }

  /** Closes the socket; messages not yet sent are dropped. */
  async close(): Promise<void> {
    this.#closed = true
    this.#replayer?.close()
    await this.#socket.close()
    await this.#security.close()
  }

  #onSubscription(frame: Buffer | undefined): void {
    if (this.#replayer === undefined || frame?.[0] !== 1) return
    this.stats.subscriptions++
    this.#replayer.subscribed(frame.subarray(1))
  }
}

function toList(endpoints: string | readonly string[] | undefined): readonly string[] {
  if (endpoints === undefined) return []
  return typeof endpoints === 'string' ? [endpoints] : endpoints
}
