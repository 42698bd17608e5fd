/**
 * Publish-subscribe with prefix subscriptions as async iterators, and an XSUB/XPUB proxy.
 *
 * ```
 *  PubSubPublisher (XPUB)          PubSubProxy                     PubSubSubscriber (SUB)
 *    publish [topic, body..] ──▶ XSUB frontend ──messages──▶ XPUB backend ──▶ filter on topic prefix
 *    sees [0x01 prefix]      ◀── XSUB frontend ◀──subscribe── XPUB backend ◀── subscribe(prefix)
 *    sees [0x00 prefix]      ◀──               ◀─unsubscribe─              ◀── break / return()
 *
 *  message:       frame 0 = topic (matched by leading bytes), frames 1..n = body
 *  subscription:  one frame, 0x01 then the prefix (0x00 then the prefix to unsubscribe)
 * ```
 *
 * Delivery is best effort. A subscriber misses what was published before its subscription reached
 * the publisher (slow joiner: use {@link waitForFlow} or `waitForSubscriber`), and a PUB/XPUB drops
 * silently when a subscriber's queue reaches the high-water mark. This module keeps the SUB socket
 * drained and does the bounding itself, per iterator, where the drops can be counted.
 *
 * Copy this file: it imports only `zeromq` and Node built-ins. Run the example with
 * `node dist/patterns/pubsub.js`.
 */
import { Subscriber, XPublisher, XSubscriber } from 'zeromq'
import { setTimeout as sleep } from 'node:timers/promises'
import { pathToFileURL } from 'node:url'

// Tuning. BUFFER_SIZE bounds memory per iterator; the SUB's own receive HWM (libzmq default 1000)
// only matters if the event loop stalls, since the receive loop never waits for consumers.
const BUFFER_SIZE = 1000
const WAIT_TIMEOUT_MS = 5000
const PROBE_INTERVAL_MS = 20

type Log = (line: string) => void
const silent: Log = () => {}
const toConsole: Log = (line) => console.log(line)
const bytes = (value: string | Buffer): Buffer => (typeof value === 'string' ? Buffer.from(value) : value)
const startsWith = (topic: Buffer, prefix: Buffer): boolean =>
  topic.length >= prefix.length && topic.subarray(0, prefix.length).equals(prefix)

/** Options for {@link PubSubPublisher}. */
export interface PublisherOptions {
  /** Messages queued per subscriber before libzmq drops new ones silently (default 1000). */
  sendHighWaterMark?: number
  /** Print `I:`/`W:`/`E:` lines (default false). */
  log?: boolean
}

/**
 * A publisher on an XPUB socket: `publish()` never throws EBUSY, and it sees what is subscribed.
 *
 * Why XPUB: the subscriptions arriving upstream (directly or through a proxy) answer the slow-joiner
 * question. It sees each prefix once (first subscribe, last unsubscribe), not each subscriber.
 *
 * @example
 * const pub = new PubSubPublisher()
 * const endpoint = await pub.bind('tcp://127.0.0.1:*')
 * await pub.waitForSubscriber('weather.')
 * await pub.publish([Buffer.from('weather.paris'), Buffer.from('21C')])
 */
export class PubSubPublisher {
  readonly #socket: XPublisher
  readonly #log: Log
  readonly #prefixes = new Map<string, Buffer>()
  readonly #waiters = new Set<(err?: Error) => void>()
  readonly #loop: Promise<void>
  #sending: Promise<void> = Promise.resolve()
  #closed = false

  constructor(options: PublisherOptions = {}) {
    this.#socket = new XPublisher({ linger: 0, sendHighWaterMark: options.sendHighWaterMark ?? 1000 })
    this.#log = options.log === true ? toConsole : silent
    this.#loop = this.#watch()
  }

  /** Binds, for subscribers connecting directly; returns the bound endpoint. */
  async bind(endpoint: string): Promise<string> {
    await this.#socket.bind(endpoint)
    return this.#socket.lastEndpoint ?? endpoint
  }

  /** Connects, e.g. to a {@link PubSubProxy} frontend. */
  connect(endpoint: string): void {
    this.#socket.connect(endpoint)
  }

  /** Publishes one message (frame 0 is the topic). Calls are sent in order, one at a time. */
  publish(frames: Buffer[]): Promise<void> {
    // zeromq.js defers a send after 512 immediate ones; a second send then would throw EBUSY.
    const sent = this.#sending.then(() => this.#socket.send(frames))
    this.#sending = sent.catch(() => undefined)
    return sent
  }

  /** The prefixes someone subscribes to right now, as seen by this publisher. */
  subscriptions(): Buffer[] {
    return [...this.#prefixes.values()]
  }

  /** Resolves once a subscription matching `topic` has reached this publisher; rejects on timeout or close. */
  waitForSubscriber(topic: string | Buffer, timeoutMs = WAIT_TIMEOUT_MS): Promise<void> {
    const wanted = bytes(topic)
    return new Promise<void>((resolve, reject) => {
      const check = (err?: Error): void => {
        if (err === undefined && !this.subscriptions().some((prefix) => startsWith(wanted, prefix))) return
        clearTimeout(timer)
        this.#waiters.delete(check)
        if (err === undefined) resolve()
        else reject(err)
      }
      const timer = setTimeout(() => check(new Error(`no subscriber for '${String(wanted)}' in ${timeoutMs} ms`)), timeoutMs)
      this.#waiters.add(check)
      check(this.#closed ? new Error('publisher closed') : undefined)
    })
  }

  /** Closes the socket (unsent messages are dropped) and rejects pending waits. */
  async close(): Promise<void> {
    this.#closed = true
    this.#socket.close()
    for (const check of [...this.#waiters]) check(new Error('publisher closed'))
    await this.#loop
  }

  async #watch(): Promise<void> {
    try {
      for await (const [frame] of this.#socket) {
        const prefix = Buffer.from(frame?.subarray(1) ?? [])
        if (frame?.[0] === 1) {
          this.#prefixes.set(prefix.toString('hex'), prefix)
          this.#log(`I: subscriber for '${prefix}'`)
          for (const check of [...this.#waiters]) check()
        } else if (frame?.[0] === 0) {
          this.#prefixes.delete(prefix.toString('hex'))
          this.#log(`I: no more subscribers for '${prefix}'`)
        }
      }
    } catch (err) {
      this.#log(`E: subscription receive failed: ${String(err)}`)
    }
  }
}

/** Options for {@link PubSubSubscriber}. */
export interface SubscriberOptions {
  /** Messages buffered per iterator; when full, the oldest is dropped for the newest (default 1000). */
  bufferSize?: number
  /** Print `I:`/`W:`/`E:` lines (default false). */
  log?: boolean
}

/**
 * One prefix subscription: an async iterator of messages (`Buffer[]`, frame 0 is the topic).
 *
 * Leaving a `for await` loop (break, return, throw) calls `return()`, which unsubscribes the prefix
 * and discards what was buffered. A consumer slower than the publishers sees the newest `bufferSize`
 * messages (freshness over completeness, as for prices or sensor data); `dropped` counts the rest.
 */
export interface Subscription extends AsyncIterableIterator<Buffer[]> {
  readonly prefix: Buffer
  /** Messages lost because the buffer was full. */
  readonly dropped: number
  /** Messages waiting to be read. */
  readonly buffered: number
  return(): Promise<IteratorResult<Buffer[], undefined>>
}

class Feed implements Subscription {
  dropped = 0
  readonly #queue: Buffer[][] = []
  readonly #readers: Array<(result: IteratorResult<Buffer[], undefined>) => void> = []
  #ended = false

  constructor(
    readonly prefix: Buffer,
    private readonly size: number,
    private readonly onEnd: (feed: Feed) => void,
  ) {}

  get buffered(): number {
    return this.#queue.length
  }

  /** Returns true when the buffer was full and a message was dropped. */
  deliver(message: Buffer[]): boolean {
    const reader = this.#readers.shift()
    if (reader !== undefined) {
      reader({ value: message, done: false })
      return false
    }
    const full = this.#queue.length >= this.size
    if (full) this.#queue.shift()
    this.#queue.push(message)
    if (full) this.dropped++
    return full
  }

  next(): Promise<IteratorResult<Buffer[], undefined>> {
    const value = this.#queue.shift()
    if (value !== undefined) return Promise.resolve({ value, done: false })
    if (this.#ended) return Promise.resolve({ value: undefined, done: true })
    return new Promise((resolve) => this.#readers.push(resolve))
  }

  return(): Promise<IteratorResult<Buffer[], undefined>> {
    this.end()
    return Promise.resolve({ value: undefined, done: true })
  }

  end(): void {
    if (this.#ended) return
    this.#ended = true
    this.#queue.length = 0
    for (const reader of this.#readers.splice(0)) reader({ value: undefined, done: true })
    this.onEnd(this)
  }

  [Symbol.asyncIterator](): this {
    return this
  }
}

/**
 * A SUB socket whose prefix subscriptions are separate async iterators.
 *
 * Why: one receive loop per socket (zeromq.js allows one pending receive) fanned out to any number
 * of consumers; a message matching several prefixes reaches each matching iterator; a slow consumer
 * loses its own oldest messages (counted) instead of stalling the others or the socket.
 *
 * @example
 * const sub = new PubSubSubscriber()
 * sub.connect(endpoint)
 * for await (const [topic, body] of sub.subscribe('weather.')) {
 *   if (String(body) === 'stop') break // unsubscribes 'weather.'
 * }
 * await sub.close()
 */
export class PubSubSubscriber {
  readonly #socket = new Subscriber({ linger: 0 })
  readonly #feeds = new Set<Feed>()
  readonly #size: number
  readonly #log: Log
  readonly #loop: Promise<void>
  #closed = false

  constructor(options: SubscriberOptions = {}) {
    this.#size = Math.max(1, options.bufferSize ?? BUFFER_SIZE)
    this.#log = options.log === true ? toConsole : silent
    this.#loop = this.#receive()
  }

  /** Connects to a publisher or a {@link PubSubProxy} backend. */
  connect(endpoint: string): void {
    this.#socket.connect(endpoint)
  }

  /** Subscribes to messages whose topic starts with `prefix` ('' for all). */
  subscribe(prefix: string | Buffer): Subscription {
    const feed = new Feed(bytes(prefix), this.#size, (ended) => this.#unsubscribe(ended))
    if (this.#closed) {
      feed.end()
      return feed
    }
    this.#feeds.add(feed)
    this.#socket.subscribe(feed.prefix)
    return feed
  }

  /** Closes the socket and ends every iterator (buffered messages are discarded). */
  async close(): Promise<void> {
    this.#closed = true
    this.#socket.close()
    for (const feed of [...this.#feeds]) feed.end()
    await this.#loop
  }

  #unsubscribe(feed: Feed): void {
    // libzmq counts subscriptions per prefix: this removes one, so other iterators on it keep theirs.
    if (this.#feeds.delete(feed) && !this.#closed) this.#socket.unsubscribe(feed.prefix)
  }

  async #receive(): Promise<void> {
    try {
      for await (const message of this.#socket) {
        const topic = message[0] ?? Buffer.alloc(0)
        for (const feed of this.#feeds) {
          // Each iterator gets its own array: a consumer may shift() or splice() what it receives.
          if (startsWith(topic, feed.prefix) && feed.deliver([...message]) && feed.dropped % 1000 === 1) {
            this.#log(`W: slow consumer on '${feed.prefix}', ${feed.dropped} dropped so far`)
          }
        }
      }
    } catch (err) {
      this.#log(`E: receive failed: ${String(err)}`)
    }
  }
}

/**
 * An XSUB/XPUB proxy: publishers connect to the frontend, subscribers to the backend, and both
 * sides can come and go without knowing each other's endpoints.
 *
 * Why two loops instead of zeromq.js `Proxy`: `Proxy.run()` holds a libuv threadpool thread until
 * `terminate()` (with the default 4 threads, four proxies made fs/dns calls hang in our check), it
 * does not stop when its sockets are closed, and it hides the traffic. Two loops (messages down,
 * subscriptions up) cost a JS hop per message, stop when the sockets close, and count what passes.
 *
 * @example
 * const proxy = new PubSubProxy()
 * const { frontend, backend } = await proxy.bind('tcp://127.0.0.1:*', 'tcp://127.0.0.1:*')
 * publisher.connect(frontend); subscriber.connect(backend)
 * await proxy.close()
 */
export class PubSubProxy {
  /** Messages forwarded down, subscribe and unsubscribe frames forwarded up. */
  readonly stats = { messages: 0, subscriptions: 0, unsubscriptions: 0 }
  readonly #frontend = new XSubscriber({ linger: 0 })
  readonly #backend = new XPublisher({ linger: 0 })
  readonly #log: Log
  #loops: Promise<unknown> | undefined
  #closed = false

  constructor(options: { log?: boolean; verbose?: boolean } = {}) {
    this.#log = options.log === true ? toConsole : silent
    // Verbose: pass every subscribe upstream, not just the first per prefix, so a publisher with a
    // last-value cache sees each late joiner.
    if (options.verbose === true) this.#backend.verbosity = 'allSubs'
  }

  /** Binds the frontend (for publishers) and the backend (for subscribers) and starts forwarding. */
  async bind(frontend: string, backend: string): Promise<{ frontend: string; backend: string }> {
    await this.#frontend.bind(frontend)
    await this.#backend.bind(backend)
    const bound = { frontend: this.#frontend.lastEndpoint ?? frontend, backend: this.#backend.lastEndpoint ?? backend }
    this.#log(`I: proxy publishers -> ${bound.frontend}, subscribers -> ${bound.backend}`)
    this.#loops ??= Promise.all([
      this.#forward(this.#frontend, this.#backend, () => this.stats.messages++),
      this.#forward(this.#backend, this.#frontend, (frame) => {
        if (frame?.[0] === 1) this.stats.subscriptions++
        else if (frame?.[0] === 0) this.stats.unsubscriptions++
      }),
    ])
    return bound
  }

  /** Closes both sockets; resolves when both loops have stopped. */
  async close(): Promise<void> {
    this.#closed = true
    this.#frontend.close()
    this.#backend.close()
    await this.#loops
  }

  async #forward(from: XSubscriber | XPublisher, to: XSubscriber | XPublisher, count: (frame?: Buffer) => void): Promise<void> {
    try {
      for await (const message of from) {
        count(message[0])
        await to.send(message)
      }
    } catch (err) {
      if (!this.#closed) this.#log(`E: proxy stopped: ${String(err)}`)
    }
  }
}

/**
 * Waits until messages from `publisher` reach `subscriber`: subscribes to `probeTopic` and publishes
 * `[probeTopic]` every few milliseconds until one arrives, then unsubscribes.
 *
 * Why: the slow-joiner fix that also covers proxies and several subscribers (a publisher's XPUB sees
 * a prefix only once). Call it after the data subscriptions: subscriptions travel in order on one
 * path, so a probe arriving proves the earlier subscriptions are in place. Pick a probe topic no
 * data subscription matches.
 *
 * @example
 * const temps = sub.subscribe('weather.')
 * await waitForFlow(pub, sub, '$probe')
 */
export async function waitForFlow(
  publisher: PubSubPublisher,
  subscriber: PubSubSubscriber,
  probeTopic: string | Buffer,
  timeoutMs = WAIT_TIMEOUT_MS,
): Promise<void> {
  const probe = subscriber.subscribe(probeTopic)
  let arrived: IteratorResult<Buffer[], undefined> | undefined
  void probe.next().then((result) => (arrived = result))
  try {
    for (const deadline = Date.now() + timeoutMs; arrived === undefined; ) {
      if (Date.now() > deadline) throw new Error(`no probe on ${String(probeTopic)} in ${timeoutMs} ms`)
      await publisher.publish([bytes(probeTopic)])
      await sleep(PROBE_INTERVAL_MS)
    }
    if (arrived.done === true) throw new Error('subscriber closed while waiting for flow')
  } finally {
    await probe.return()
  }
}

/** Options for {@link main}: messages per publisher (default 5), delivery timeout (default 5000). */
export interface PubSubMainOptions {
  messages?: number
  timeoutMs?: number
  log?: boolean
}

/** What {@link main} saw: `received` keyed `subscriber:prefix`, `upstream` the weather publisher's view. */
export interface PubSubSummary {
  published: number
  received: Record<string, number>
  dropped: number
  proxy: PubSubProxy['stats']
  upstream: string[]
}

/**
 * Two publishers (weather., news.) and two subscribers (A: both prefixes, B: news. only) through
 * one proxy, in one process. Resolves with what was delivered.
 *
 * Why: a runnable, testable demonstration of prefix routing, fan-out and the slow-joiner wait.
 *
 * @example
 * const summary = await main({ messages: 3 })
 * // summary.received => { 'A:weather.': 3, 'A:news.': 3, 'B:news.': 3 }
 */
export async function main(options: PubSubMainOptions = {}): Promise<PubSubSummary> {
  const n = options.messages ?? 5
  const log = options.log === true
  const proxy = new PubSubProxy({ log })
  const publishers = { weather: new PubSubPublisher({ log }), news: new PubSubPublisher({ log }) }
  const subscribers = { A: new PubSubSubscriber({ log }), B: new PubSubSubscriber({ log }) }
  const feeds: Record<string, Subscription> = {
    'A:weather.': subscribers.A.subscribe('weather.'),
    'A:news.': subscribers.A.subscribe('news.'),
    'B:news.': subscribers.B.subscribe('news.'),
  }
  const summary: PubSubSummary = { published: 0, received: {}, dropped: 0, proxy: proxy.stats, upstream: [] }
  const giveUp = new AbortController()
  try {
    const { frontend, backend } = await proxy.bind('tcp://127.0.0.1:*', 'tcp://127.0.0.1:*')
    for (const publisher of Object.values(publishers)) publisher.connect(frontend)
    for (const subscriber of Object.values(subscribers)) subscriber.connect(backend)
    const pairs = Object.entries(publishers).flatMap(([name, pub]) => Object.values(subscribers).map((sub) => ({ name, pub, sub })))
    await Promise.all(pairs.map(({ name, pub, sub }) => waitForFlow(pub, sub, `$probe.${name}`)))
    summary.upstream = publishers.weather.subscriptions().map(String).filter((p) => !p.startsWith('$probe')).sort()
    const consuming = Object.entries(feeds).map(async ([label, feed]) => {
      summary.received[label] = 0
      for await (const [topic, body] of feed) {
        if (log) console.log(`I: ${label} got ${String(topic)} ${String(body)}`)
        if (++summary.received[label] === n) break
      }
    })
    for (let i = 1; i <= n; i++) {
      await publishers.weather.publish([Buffer.from('weather.paris'), Buffer.from(`${10 + i}C`)])
      await publishers.news.publish([Buffer.from('news.world'), Buffer.from(`story ${i}`)])
      summary.published += 2
    }
    await Promise.race([
      Promise.all(consuming),
      sleep(options.timeoutMs ?? WAIT_TIMEOUT_MS, undefined, { signal: giveUp.signal }).catch(() => undefined),
    ])
  } finally {
    giveUp.abort()
    summary.dropped = Object.values(feeds).reduce((sum, feed) => sum + feed.dropped, 0)
    await Promise.all([...Object.values(subscribers), ...Object.values(publishers), proxy].map((s) => s.close()))
  }
  return summary
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  void main({ log: true }).then(
    (summary) => console.log(`I: done ${JSON.stringify(summary)}`),
    (err: unknown) => {
      console.error(`E: ${String(err)}`)
      process.exitCode = 1
    },
  )
}
