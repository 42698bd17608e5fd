/**
 * Hostile peers against the publisher, the subscriber and the proxy: subscribe floods, forged
 * sequence numbers, oversized messages, many keys. Each measures RSS growth (printed, bounded) and
 * that an honest subscriber keeps receiving live messages while and after it runs.
 */
import { expect } from 'chai'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { Type } from 'typebox'
import { Publisher as RawPublisher, XSubscriber } from 'zeromq'
import { defineTopic, Publisher, Subscriber, waitForFlow, type TopicSubscription, TopicProxy } from '../../lib/index.js'
import { encodeCbor } from '../../lib/codec/cbor.js'
import { encodeTopicEnvelope } from '../../lib/pubsub/frame.js'
import { until } from '../helpers/endpoints.js'
import { collect, report, rssMb } from '../helpers/hostile.js'

const Prices = defineTopic('prices', Type.Object({ sym: Type.String(), px: Type.Number() }))
const Live = defineTopic('live', Type.Integer())

/** Publishes on Live every 20 ms until `live` gets one of them; resolves with the wait in ms, rejects after `ms`. */
async function liveWithin(pub: Publisher, live: TopicSubscription<number>, ms = 2000): Promise<number> {
  const started = performance.now()
  const marker = Math.floor(Math.random() * 1e9)
  // One read at a time: a read abandoned at a timeout would still take the next message.
  let pending = live.next()
  for (;;) {
    if (performance.now() - started > ms) throw new Error(`no live message within ${ms} ms`)
    await pub.publish(Live, marker)
    const got = await Promise.race([pending, sleep(20).then(() => undefined)])
    if (got === undefined) continue
    if (got.done === true) throw new Error('subscription ended')
    if (got.value.data === marker) return performance.now() - started
    pending = live.next()
  }
}

describe('hostile peers against pub/sub', function () {
  this.timeout(20_000)
  let closables: Array<{ close(): unknown }> = []
  const track = <T extends { close(): unknown }>(thing: T): T => (closables.push(thing), thing)
  afterEach(async () => {
    await Promise.all(closables.map((c) => c.close()))
    closables = []
  })

  it('a flood of 200 subscribe frames against a 5,000-key last-value cache costs bounded replays, and live messages flow', async () => {
    const pub = track(new Publisher({ lastValueCache: true }))
    const [endpoint] = await pub.bind('tcp://127.0.0.1:*')
    const honest = track(new Subscriber({ connect: endpoint! }))
    const live = honest.subscribe(Live)
    await waitForFlow(pub, honest)
    for (let i = 0; i < 5000; i++) await pub.publish(Prices, { sym: `S${i}`, px: i }, { key: `S${i}` })
    collect()
    const before = rssMb()
    const attacker = track(new XSubscriber({ linger: 0, sendHighWaterMark: 10_000 }))
    attacker.connect(endpoint!)
    const flood = (async () => {
      for (let i = 0; i < 200; i++) await attacker.send(Buffer.from('\x01prices\0'))
    })()
    const waits: number[] = []
    const done = flood.then(() => until(() => pub.stats.subscriptions >= 201, 5000, 'the flood to arrive'))
    let finished = false
    void done.finally(() => (finished = true))
    while (!finished) waits.push(await liveWithin(pub, live))
    await done
    await sleep(300) // passes due after the interval
    const grown = rssMb() - before
    report('200 subscribes x 5,000 cached keys', { replayed: pub.stats.replayed, passes: pub.stats.replayPasses, coalesced: pub.stats.replaysCoalesced, rssGrowthMb: grown, honestWorstMs: Math.max(...waits, 0) })
    // Before: 1,000,200 replays, a 2.7 s blocked loop and +568 MB.
    expect(pub.stats.replayed).to.be.at.most(5000 * 10)
    expect(grown).to.be.below(150)
    waits.push(await liveWithin(pub, live))
  })

  it('60,000 distinct subscriptions through the proxy stay within maxSubscriptions, and subscribers keep receiving', async () => {
    const proxy = track(new TopicProxy())
    const { frontend, backend } = await proxy.bind('tcp://127.0.0.1:*', 'tcp://127.0.0.1:*')
    const pub = track(new Publisher({ connect: frontend }))
    const honest = track(new Subscriber({ connect: backend }))
    const live = honest.subscribe(Live)
    await waitForFlow(pub, honest)
    collect()
    const before = rssMb()
    const attacker = track(new XSubscriber({ linger: 0, sendHighWaterMark: 100_000 }))
    attacker.connect(backend)
    for (let i = 0; i < 60_000; i++) await attacker.send(Buffer.from(`\x01prices\0k${i}\0`))
    await until(() => proxy.stats.subscriptions + proxy.stats.subscriptionsRefused >= 60_000, 10_000, 'the flood to reach the proxy')
    const wait = await liveWithin(pub, live)
    // A subscriber joining later on a topic already subscribed still gets it. (Not waitForFlow: its
    // probe is a new prefix, refused while the proxy is full.)
    const late = track(new Subscriber({ connect: backend }))
    const lateLive = late.subscribe(Live)
    const lateWait = await liveWithin(pub, lateLive, 3000)
    const grown = rssMb() - before
    report('60,000 subscriptions through the proxy', { passedUp: proxy.stats.prefixes, refused: proxy.stats.subscriptionsRefused, rssGrowthMb: grown, honestMs: wait, lateMs: lateWait })
    expect(proxy.stats.prefixes).to.be.at.most(10_000)
    expect(proxy.stats.subscriptionsRefused).to.be.at.least(50_000)
    // Before: +277 MB; the proxy's own XPUB still holds every prefix (libzmq), the publisher side does not.
    expect(grown).to.be.below(200)
  })

  it('5 MiB messages through the proxy are dropped there, and subscribers keep receiving', async () => {
    const proxy = track(new TopicProxy())
    const { frontend, backend } = await proxy.bind('tcp://127.0.0.1:*', 'tcp://127.0.0.1:*')
    const pub = track(new Publisher({ connect: frontend }))
    const honest = track(new Subscriber({ connect: backend }))
    const live = honest.subscribe(Live)
    await waitForFlow(pub, honest)
    collect()
    const before = rssMb()
    const raw = track(new RawPublisher({ linger: 0 }))
    raw.connect(frontend)
    await sleep(100)
    const waits: number[] = []
    for (let i = 0; i < 3; i++) {
      // Frames under 4 MiB that add up to 6 MiB: dropped by the proxy, counted.
      await raw.send([Buffer.from('live\0\0'), Buffer.alloc(3 << 20), Buffer.alloc(3 << 20)])
      // One 5 MiB frame: libzmq ends this publisher's connection at the proxy; it reconnects.
      await raw.send([Buffer.from('live\0\0'), Buffer.alloc(5 << 20)])
      waits.push(await liveWithin(pub, live))
      await until(() => proxy.stats.publisherDisconnects > i, 2000, 'the proxy to drop the connection')
      await sleep(300) // the raw publisher reconnects and gets the subscriptions again
    }
    const grown = rssMb() - before
    report('5 MiB frames and 6 MiB multipart messages through the proxy', { oversized: proxy.stats.oversized, publisherDisconnects: proxy.stats.publisherDisconnects, rssGrowthMb: grown, honestWorstMs: Math.max(...waits) })
    expect(honest.stats.recoveries).to.equal(0)
    expect(proxy.stats.oversized).to.be.at.least(1)
    expect(grown).to.be.below(150)
  })

  it('forged sequence numbers under 1,000 invented and one copied publisher id never silence the honest stream', async () => {
    const raw = track(new RawPublisher({ linger: 0 }))
    await raw.bind('tcp://127.0.0.1:*')
    const pub = track(new Publisher())
    const [endpoint] = await pub.bind('tcp://127.0.0.1:*')
    const honest = track(new Subscriber({ connect: [endpoint!, raw.lastEndpoint!], maxTrackedStreams: 500 }))
    const live = honest.subscribe(Live)
    await waitForFlow(pub, honest)
    await liveWithin(pub, live)
    collect()
    const before = rssMb()
    const waits: number[] = []
    const frame = Buffer.from('live\0\0')
    for (let round = 0; round < 10; round++) {
      // The honest publisher's own id, copied off the wire, with the largest number; and many invented ids.
      await raw.send([frame, encodeTopicEnvelope(pub.id, Number.MAX_SAFE_INTEGER - round, encodeCbor(-1))])
      for (let i = 0; i < 100; i++) await raw.send([frame, encodeTopicEnvelope(randomBytes(8), 2 ** 52 + i, encodeCbor(-1))])
      waits.push(await liveWithin(pub, live))
    }
    const grown = rssMb() - before
    report('forged sequence numbers', { epochs: honest.stats.epochs, evicted: honest.stats.evicted, rssGrowthMb: grown, honestWorstMs: Math.max(...waits) })
    expect(honest.stats.epochs).to.be.at.least(1)
    expect(honest.stats.evicted).to.be.at.least(400)
    expect(grown).to.be.below(100)
  })
})
