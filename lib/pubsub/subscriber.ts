/**
 * The typed subscriber: one SUB socket, one receive loop, any number of typed subscriptions as
 * async iterators. Everything from the network is checked before a user sees it.
 *
 * The socket is a TransportSocket: when a connection dies without libzmq retrying it (a message over
 * `maxMessageSize`), the transport replaces the socket, and the subscriptions are made again on the
 * fresh one, so one oversized message costs a moment of messages, not the subscriber.
 *
 * It is an XSUB, subscribing by sending `01 prefix` (`00 prefix` to unsubscribe), which is what a
 * SUB does inside libzmq: the transport's SUB type sets a send option a SUB does not have. XSUB
 * counts subscriptions per prefix as SUB does, and the publisher filters either way.
 */
import { DEFAULT_CBOR_LIMITS, decodeCbor, type CborLimits } from '../codec/cbor.js'
import type { CurveOptions } from '../transport/curve.js'
import { SocketSecurity } from '../transport/security.js'
import { TransportSocket } from '../transport/socket.js'
import { Feed } from './feed.js'
import { decodeTopicEnvelope } from './frame.js'
import { SequenceTracker } from './sequence.js'
import { checkerFor, checkKey, parseStreamFrame, subscriptionPrefix, type DataOf, type TopicCheck, type TopicDefinition } from './topic.js'

/** One message as a subscriber sees it: checked against the topic's schema. */
export interface TopicMessage<D> {
  readonly topic: string
  readonly key: string
  readonly data: D
  /** The publisher's sequence number on this stream (topic and key). */
  readonly seq: number
  /** The publisher's id, hex. */
  readonly publisher: string
}

/** Messages a subscriber knows it missed on one stream: reported by `onGap`. */
export interface Gap {
  readonly topic: string
  readonly key: string
  readonly publisher: string
  /** How many sequence numbers were skipped. */
  readonly missed: number
  /** The sequence number that revealed the gap. */
  readonly seq: number
}

/** Options for {@link Subscriber}. */
export interface SubscriberOptions {
  /** Publisher or proxy endpoints to connect to now. */
  readonly connect?: string | readonly string[]
  /** Messages buffered per subscription before the oldest is dropped (default 1000). */
  readonly bufferSize?: number
  /** Streams tracked for gap detection; past this, the one first seen longest ago is forgotten (default 10 000). */
  readonly maxTrackedStreams?: number
  /** Largest message accepted, in bytes; also the socket's ZMQ_MAXMSGSIZE (default 4 MiB). */
  readonly maxMessageSize?: number
  /** Called for every gap, from the receive loop: keep it short. Throws are ignored. */
  readonly onGap?: (gap: Gap) => void
  /** Called for every new epoch (an impossible jump in a stream's numbers), from the receive loop. Throws are ignored. */
  readonly onEpoch?: (epoch: Epoch) => void
  /**
   * Largest jump between sequence numbers still read as a gap (default 2^20); a larger one, or one
   * as far back, starts a new epoch: delivered, counted, and it cannot silence the stream.
   */
  readonly maxSequenceJump?: number
  /** Messages libzmq may hold for this socket before the publisher drops new ones (default 1000). */
  readonly receiveHighWaterMark?: number
  /** CURVE (docs/security.md): `{ serverKey: the publisher's or proxy's public key, publicKey, secretKey }`. */
  readonly curve?: CurveOptions
}

/**
 * A stream's numbers jumped further than any loss explains (a forged sequence number, or a
 * publisher that restarted its numbers): reported by `onEpoch`, the message is delivered.
 */
export interface Epoch {
  readonly topic: string
  readonly key: string
  readonly publisher: string
  /** The number that started the epoch. */
  readonly seq: number
  /** The counter it did not fit. */
  readonly previous: number
}

/** Per-subscription options. */
export interface SubscribeOptions {
  /** Only this key's stream; filtered by libzmq. Default: every key of the topic. */
  readonly key?: string
}

/** What a {@link Subscriber} received and what it did with it. */
export interface SubscriberStats {
  /** Messages off the socket. */
  received: number
  /** Messages handed to subscriptions (one per subscription it matched). */
  delivered: number
  /** Not a topic message (frames, envelope or CBOR wrong): dropped. */
  malformed: number
  /** A topic message whose data fails the schema: dropped. */
  invalid: number
  /** Sequence numbers seen before (e.g. last-value replays for other subscribers): dropped. */
  duplicates: number
  /** Gaps detected, and the messages they add up to. */
  gaps: number
  missed: number
  /** Messages lost because a subscription's buffer was full (its consumer was too slow). */
  dropped: number
  /** Streams forgotten because more than `maxTrackedStreams` were seen. */
  evicted: number
  /** New epochs: impossible jumps in a stream's sequence numbers (forged or restarted), delivered. */
  epochs: number
  /** Sockets replaced after a connection died without a retry (an oversized message); subscriptions were made again. */
  recoveries: number
}

/** A typed subscription: an async iterator; leaving the `for await` unsubscribes. */
export interface TopicSubscription<D> extends AsyncIterableIterator<TopicMessage<D>> {
  readonly topic: string
  readonly key: string | undefined
  /** Messages this subscription lost because its buffer was full. */
  readonly dropped: number
  /** Messages waiting to be read. */
  readonly buffered: number
  return(): Promise<IteratorResult<TopicMessage<D>, undefined>>
}

interface Entry {
  readonly prefix: Buffer
  readonly prefixId: string
  readonly check: TopicCheck
  readonly feed: TopicFeed
  /** `stats.received` when it was made: a replay of a message seen before then is new to it. */
  readonly since: number
}

class TopicFeed extends Feed<TopicMessage<unknown>> {
  constructor(
    readonly topic: string,
    readonly key: string | undefined,
    size: number,
    onEnd: () => void,
  ) {
    super(size, onEnd)
  }
}

/**
 * Receives typed messages on topics.
 *
 * Why one loop fanned out: zeromq.js allows one pending receive per socket, and libzmq delivers a
 * message once per socket however many subscriptions match it.
 *
 * @example
 * const sub = new Subscriber({ connect: endpoint, onGap: (g) => console.warn(g) })
 * for await (const msg of sub.subscribe(Prices, { key: 'AAPL' })) console.log(msg.data.px)
 */
export class Subscriber {
  readonly stats: SubscriberStats = { received: 0, delivered: 0, malformed: 0, invalid: 0, duplicates: 0, gaps: 0, missed: 0, dropped: 0, evicted: 0, epochs: 0, recoveries: 0 }
  readonly #socket: TransportSocket
  readonly #entries = new Set<Entry>()
  readonly #tracker: SequenceTracker<StreamInfo | null>
  readonly #limits: CborLimits
  readonly #bufferSize: number
  readonly #onGap: ((gap: Gap) => void) | undefined
  readonly #onEpoch: ((epoch: Epoch) => void) | undefined
  #closed = false

  constructor(options: SubscriberOptions = {}) {
    const security = SocketSecurity.for(options.curve, 'Subscriber', 'connect')
    const maxMessageSize = options.maxMessageSize ?? DEFAULT_CBOR_LIMITS.maxBytes
    this.#socket = new TransportSocket(
      {
        type: 'xsub',
        maxMessageSize,
        coalesce: false,
        lingerMs: 0,
        // libzmq's own default: the receive loop never waits for consumers, so this fills only while
        // the event loop is blocked; bursts of small messages must not be dropped at the publisher.
        // Subscribe messages beyond the send high-water mark would be dropped by libzmq: a burst of
        // subscriptions (one per key) must all leave. They are small (at most 386 bytes each).
        socketOptions: { receiveHighWaterMark: Math.max(1, options.receiveHighWaterMark ?? 1000), sendHighWaterMark: MAX_SUBSCRIPTION_BURST, ...security.socketOptions },
      },
      {
        onMessage: (message) => this.#handle(message),
        onState: (state) => {
          if (state === 'ready') this.#resubscribe()
        },
      },
    )
    this.#limits = { ...DEFAULT_CBOR_LIMITS, maxBytes: maxMessageSize }
    const trackerOptions = options.maxSequenceJump === undefined ? {} : { maxJump: options.maxSequenceJump }
    this.#tracker = new SequenceTracker(Math.max(1, options.maxTrackedStreams ?? 10_000), trackerOptions)
    this.#bufferSize = Math.max(1, options.bufferSize ?? 1000)
    this.#onGap = options.onGap
    this.#onEpoch = options.onEpoch
    for (const endpoint of toList(options.connect)) this.#socket.connect(endpoint)
  }

  /** Connects to a publisher or to the subscriber side (XPUB) of a `zrpc proxy`. Throws EndpointError for a malformed endpoint. */
  connect(endpoints: string | readonly string[]): void {
    for (const endpoint of toList(endpoints)) this.#socket.connect(endpoint)
  }

  /** Subscribes to every key of `topic`, or to one key. Throws INVALID_ARGUMENT for a bad key. */
  subscribe<T extends TopicDefinition>(topic: T, options: SubscribeOptions = {}): TopicSubscription<DataOf<T>> {
    if (options.key !== undefined) checkKey(options.key)
    const prefix = subscriptionPrefix(topic.name, options.key)
    const entry: Entry = {
      prefix,
      prefixId: prefix.toString('latin1'),
      check: checkerFor(topic),
      feed: new TopicFeed(topic.name, options.key, this.#bufferSize, () => this.#unsubscribe(entry)),
      since: this.stats.received,
    }
    // The receive loop checked the data against this topic's schema before pushing it.
    const subscription = entry.feed as unknown as TopicSubscription<DataOf<T>>
    if (this.#closed) {
      entry.feed.end()
      return subscription
    }
    this.#entries.add(entry)
    this.#send(SUBSCRIBE, prefix)
    return subscription
  }

  /** Closes the socket and ends every subscription (buffered messages are discarded). */
  async close(): Promise<void> {
    this.#closed = true
    for (const entry of [...this.#entries]) entry.feed.end()
    await this.#socket.close()
  }

  /** Queues a subscribe (01) or unsubscribe (00) message for `prefix`. */
  #send(command: Buffer, prefix: Buffer): void {
    this.#socket.push(Buffer.concat([command, prefix]))
  }

  /**
   * A replaced socket has no subscriptions: make every one again (libzmq counts them per prefix,
   * so one subscribe per entry restores the same counts). Runs when the connection is ready again,
   * since the transport says nothing when it swaps sockets.
   */
  #resubscribe(): void {
    const recoveries = this.#socket.counters.recoveries
    if (recoveries === this.stats.recoveries || this.#closed) return
    this.stats.recoveries = recoveries
    for (const entry of this.#entries) this.#send(SUBSCRIBE, entry.prefix)
  }

  #unsubscribe(entry: Entry): void {
    if (!this.#entries.delete(entry) || this.#closed) return
    // libzmq counts subscriptions per prefix: this removes one, others on the same prefix stay.
    this.#send(UNSUBSCRIBE, entry.prefix)
    // A stream nobody covers any more would report a false gap on a later re-subscribe.
    this.#tracker.forget(entry.prefixId, (stream) => [...this.#entries].some((e) => stream.startsWith(e.prefixId)))
  }

  #handle(message: Buffer[]): void {
    this.stats.received++
    const [head, body] = message
    if (message.length !== 2 || head === undefined || body === undefined) {
      this.stats.malformed++
      return
    }
    let matching: Entry[] = []
    for (const entry of this.#entries) if (startsWith(head, entry.prefix)) matching.push(entry)
    // Nothing matches: a message in flight when its subscription ended.
    if (matching.length === 0) return
    const envelope = decodeTopicEnvelope(body, this.#limits)
    if (typeof envelope === 'string') {
      this.stats.malformed++
      return
    }
    const streamId = head.toString('latin1') + envelope.publisher
    const verdict = this.#tracker.observe(streamId, envelope.seq, this.stats.received, () => describe(head, envelope.publisher))
    this.stats.evicted = this.#tracker.evicted
    this.stats.epochs = this.#tracker.epochs
    const stream = this.#tracker.current
    if (stream === undefined || stream === null) {
      // Not `name\0key\0`: remembered as such, so a foreign stream costs one parse, not one per message.
      this.stats.malformed++
      return
    }
    if (verdict.kind === 'duplicate') {
      // A last-value replay goes to every subscriber of the prefix: only subscriptions made after
      // this socket last saw the message get it; for the rest it is a duplicate.
      const at = verdict.at
      matching = verdict.latest ? matching.filter((entry) => entry.since >= at) : []
      if (matching.length === 0) {
        this.stats.duplicates++
        return
      }
      this.#tracker.touch(streamId, this.stats.received)
    }
    const { topic, key, publisher } = stream
    if (verdict.kind === 'gap') {
      this.stats.gaps++
      this.stats.missed += verdict.missed
      this.#report(this.#onGap, { topic, key, publisher, missed: verdict.missed, seq: envelope.seq })
    } else if (verdict.kind === 'epoch') {
      this.#report(this.#onEpoch, { topic, key, publisher, seq: envelope.seq, previous: verdict.previous })
    }
    let invalid = false
    for (const entry of matching) {
      // Decoded per subscription: each consumer owns its object and may change it.
      let data: unknown
      try {
        data = decodeCbor(envelope.data, this.#limits)
      } catch {
        this.stats.malformed++
        return
      }
      if (entry.check(data) !== undefined) {
        invalid = true
        continue
      }
      if (entry.feed.push({ topic, key, data, seq: envelope.seq, publisher })) this.stats.dropped++
      this.stats.delivered++
    }
    if (invalid) this.stats.invalid++
  }

  #report<T>(callback: ((value: T) => void) | undefined, value: T): void {
    try {
      callback?.(value)
    } catch {
      // A throwing callback must not stop the receive loop.
    }
  }
}

interface StreamInfo {
  readonly topic: string
  readonly key: string
  readonly publisher: string
}

function describe(head: Buffer, publisher: string): StreamInfo | null {
  const stream = parseStreamFrame(head)
  return stream === undefined ? null : { ...stream, publisher: Buffer.from(publisher, 'latin1').toString('hex') }
}

/** Subscribe and unsubscribe messages that may wait to leave at once (the socket's send high-water mark). */
const MAX_SUBSCRIPTION_BURST = 10_000
const SUBSCRIBE = Buffer.from([1])
const UNSUBSCRIBE = Buffer.from([0])

const startsWith = (frame: Buffer, prefix: Buffer): boolean =>
  frame.length >= prefix.length && frame.compare(prefix, 0, prefix.length, 0, prefix.length) === 0

function toList(endpoints: string | readonly string[] | undefined): readonly string[] {
  if (endpoints === undefined) return []
  return typeof endpoints === 'string' ? [endpoints] : endpoints
}
