/**
 * The typed subscriber: one SUB socket, one receive loop, any number of typed subscriptions as
 * async iterators. Everything from the network is checked before a user sees it.
 */
import { Subscriber as SubSocket } from 'zeromq'
import { DEFAULT_CBOR_LIMITS, decodeCbor, type CborLimits } from '../codec/cbor.js'
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
  readonly stats: SubscriberStats = { received: 0, delivered: 0, malformed: 0, invalid: 0, duplicates: 0, gaps: 0, missed: 0, dropped: 0, evicted: 0 }
  readonly #socket: SubSocket
  readonly #entries = new Set<Entry>()
  readonly #tracker: SequenceTracker<StreamInfo | null>
  readonly #limits: CborLimits
  readonly #bufferSize: number
  readonly #onGap: ((gap: Gap) => void) | undefined
  readonly #loop: Promise<void>

  constructor(options: SubscriberOptions = {}) {
    const maxMessageSize = options.maxMessageSize ?? DEFAULT_CBOR_LIMITS.maxBytes
    this.#socket = new SubSocket({ linger: 0, maxMessageSize })
    this.#limits = { ...DEFAULT_CBOR_LIMITS, maxBytes: maxMessageSize }
    this.#tracker = new SequenceTracker(Math.max(1, options.maxTrackedStreams ?? 10_000))
    this.#bufferSize = Math.max(1, options.bufferSize ?? 1000)
    this.#onGap = options.onGap
    for (const endpoint of toList(options.connect)) this.#socket.connect(endpoint)
    this.#loop = this.#receive()
  }

  /** Connects to a publisher or to the subscriber side (XPUB) of a `zrpc proxy`. */
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
    if (this.#socket.closed) {
      entry.feed.end()
      return subscription
    }
    this.#entries.add(entry)
    this.#socket.subscribe(prefix)
    return subscription
  }

  /** Closes the socket and ends every subscription (buffered messages are discarded). */
  async close(): Promise<void> {
    this.#socket.close()
    for (const entry of [...this.#entries]) entry.feed.end()
    await this.#loop
  }

  #unsubscribe(entry: Entry): void {
    if (!this.#entries.delete(entry) || this.#socket.closed) return
    // libzmq counts subscriptions per prefix: this removes one, others on the same prefix stay.
    this.#socket.unsubscribe(entry.prefix)
    // A stream nobody covers any more would report a false gap on a later re-subscribe.
    this.#tracker.forget(entry.prefixId, (stream) => [...this.#entries].some((e) => stream.startsWith(e.prefixId)))
  }

  async #receive(): Promise<void> {
    try {
      for await (const message of this.#socket) this.#handle(message)
    } catch {
      // The socket closed under the receive: that is close().
    }
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
      this.#reportGap({ topic, key, publisher, missed: verdict.missed, seq: envelope.seq })
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

  #reportGap(gap: Gap): void {
    try {
      this.#onGap?.(gap)
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

const startsWith = (frame: Buffer, prefix: Buffer): boolean =>
  frame.length >= prefix.length && frame.compare(prefix, 0, prefix.length, 0, prefix.length) === 0

function toList(endpoints: string | readonly string[] | undefined): readonly string[] {
  if (endpoints === undefined) return []
  return typeof endpoints === 'string' ? [endpoints] : endpoints
}
