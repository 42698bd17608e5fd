/**
 * The typed publisher: validates, stamps publisher id and sequence number, sends on a PUB socket,
 * or with the last-value cache on an XPUB socket that answers new subscriptions from the cache.
 */
import { randomBytes } from 'node:crypto'
import { Publisher as PubSocket, XPublisher } from 'zeromq'
import { encodeCbor } from '../codec/cbor.js'
import { RpcError } from '../errors.js'
import { encodeTopicEnvelope, PUBLISHER_ID_BYTES } from './frame.js'
import { checkerFor, checkKey, streamFrame, type DataOf, type TopicDefinition } from './topic.js'

/** Options for {@link Publisher}. */
export interface PublisherOptions {
  /** Endpoints to connect to now, e.g. a proxy's publisher side. */
  readonly connect?: string | readonly string[]
  /** Messages queued per subscriber before libzmq drops new ones, silently (default 1000). */
  readonly sendHighWaterMark?: number
  /**
   * Keep the last message of every stream and send it again when a subscription for it arrives,
   * so late joiners start with the current value (default false). Sets XPUB verbose mode, so every
   * subscribe is seen, not just the first per prefix.
   */
  readonly lastValueCache?: boolean
}

/** Per-message options of {@link Publisher.publish}. */
export interface PublishOptions {
  /** The stream within the topic; subscribers may filter on it. Default '' (no key). */
  readonly key?: string
}

/** What a {@link Publisher} has done. */
export interface PublisherStats {
  published: number
  /** Cached messages sent again for new subscriptions. */
  replayed: number
  /** Subscribe frames seen: counted with the cache on (every one, XPUB verbose), else 0. */
  subscriptions: number
}

interface Stream {
  readonly frame: Buffer
  seq: number
  /** The last envelope sent, kept only with the cache on. */
  last: Buffer | undefined
}

/**
 * Publishes typed messages on topics.
 *
 * With `lastValueCache` it uses XPUB, which sees subscriptions arriving: what the cache answers.
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
  readonly stats: PublisherStats = { published: 0, replayed: 0, subscriptions: 0 }
  readonly #socket: PubSocket | XPublisher
  /** Per topic name, per key: two lookups instead of building a key string per message. */
  readonly #streams = new Map<string, Map<string, Stream>>()
  readonly #cache: boolean
  readonly #loop: Promise<void>
  #sending: Promise<void> = Promise.resolve()
  #inFlight = 0

  constructor(options: PublisherOptions = {}) {
    const socketOptions = { linger: 0, sendHighWaterMark: options.sendHighWaterMark ?? 1000 }
    this.#cache = options.lastValueCache === true
    // Without the cache nothing needs the subscriptions, and a plain PUB is cheaper per message:
    // zeromq.js re-checks a socket with a receive pending after every send.
    if (this.#cache) {
      const xpub = new XPublisher(socketOptions)
      xpub.verbosity = 'allSubs'
      this.#socket = xpub
      this.#loop = this.#watch(xpub)
    } else {
      this.#socket = new PubSocket(socketOptions)
      this.#loop = Promise.resolve()
    }
    for (const endpoint of toList(options.connect)) this.#socket.connect(endpoint)
  }

  /** Binds to each endpoint and returns the resolved ones (ports filled in). */
  async bind(endpoints: string | readonly string[]): Promise<string[]> {
    const bound: string[] = []
    for (const endpoint of toList(endpoints)) {
      await this.#socket.bind(endpoint)
      bound.push(this.#socket.lastEndpoint ?? endpoint)
    }
    return bound
  }

  /** Connects, e.g. to the publisher side (XSUB) of a `zrpc proxy`. */
  connect(endpoints: string | readonly string[]): void {
    for (const endpoint of toList(endpoints)) this.#socket.connect(endpoint)
  }

  /**
   * Validates and sends one message. Throws RpcError at once (synchronously), and sends nothing:
   * INVALID_ARGUMENT for data that does not match the topic's schema or a bad key,
   * FAILED_PRECONDITION after close. The returned promise resolves when the socket took the
   * message, which is not delivery.
   */
  publish<T extends TopicDefinition>(topic: T, data: DataOf<T>, options: PublishOptions = {}): Promise<void> {
    const key = options.key ?? ''
    const invalid = checkerFor(topic)(data)
    if (invalid !== undefined) throw invalid
    if (this.#socket.closed) throw new RpcError('FAILED_PRECONDITION', 'publisher is closed')
    let keys = this.#streams.get(topic.name)
    if (keys === undefined) this.#streams.set(topic.name, (keys = new Map()))
    let stream = keys.get(key)
    if (stream === undefined) {
      checkKey(key)
      stream = { frame: streamFrame(topic.name, key), seq: 0, last: undefined }
      keys.set(key, stream)
    }
    const envelope = encodeTopicEnvelope(this.id, ++stream.seq, encodeCbor(data))
    if (this.#cache && !topic.name.startsWith('$')) stream.last = envelope
    this.stats.published++
    return this.#send(stream.frame, envelope)
  }

  /** Closes the socket; messages not yet sent are dropped. */
  async close(): Promise<void> {
    this.#socket.close()
    await this.#loop
  }

  #send(frame: Buffer, envelope: Buffer): Promise<void> {
    // One send at a time: zeromq.js throws EBUSY synchronously on a second concurrent send. With
    // nothing in flight (the common case: the caller awaited the last publish) send directly.
    const sent = this.#inFlight === 0 ? this.#socket.send([frame, envelope]) : this.#sending.then(() => this.#socket.send([frame, envelope]))
    this.#inFlight++
    this.#sending = sent.then(
      () => void this.#inFlight--,
      () => void this.#inFlight--,
    )
    return sent
  }

  async #watch(socket: XPublisher): Promise<void> {
    try {
      for await (const [frame] of socket) {
        if (frame?.[0] !== 1) continue
        this.stats.subscriptions++
        this.#replay(frame.subarray(1))
      }
    } catch {
      // The socket closed under the receive: that is close(), nothing to report.
    }
  }

  /** Sends the cached last message of every stream the new subscription covers. */
  #replay(prefix: Buffer): void {
    for (const keys of this.#streams.values()) {
      for (const stream of keys.values()) {
        if (stream.last === undefined || stream.frame.length < prefix.length) continue
        if (!stream.frame.subarray(0, prefix.length).equals(prefix)) continue
        this.stats.replayed++
        // Subscribers that already have it drop it as a duplicate (same sequence number).
        this.#send(stream.frame, stream.last).catch(() => undefined)
      }
    }
  }
}

function toList(endpoints: string | readonly string[] | undefined): readonly string[] {
  if (endpoints === undefined) return []
  return typeof endpoints === 'string' ? [endpoints] : endpoints
}
