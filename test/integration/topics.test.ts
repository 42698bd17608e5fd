import { expect } from 'chai'
import { setTimeout as sleep } from 'node:timers/promises'
import { Type } from 'typebox'
import { Publisher as RawPublisher } from 'zeromq'
import { PubSubProxy } from '../../patterns/pubsub.js'
import { defineTopic, Publisher, RpcError, Subscriber, waitForFlow, type Gap, type TopicMessage, type TopicSubscription, TopicProxy } from '../../lib/index.js'
import { encodeTopicEnvelope } from '../../lib/pubsub/frame.js'
import type { Epoch } from '../../lib/pubsub/subscriber.js'
import { encodeCbor } from '../../lib/codec/cbor.js'
import { TRANSPORTS, bindAddress, until } from '../helpers/endpoints.js'

const Prices = defineTopic('prices', Type.Object({ sym: Type.String(), px: Type.Number() }))
const Prices2 = defineTopic('prices2', Type.Object({ sym: Type.String(), px: Type.Number() }))
const News = defineTopic('news', Type.String())

// Fails instead of hanging when a message never comes.
async function next<D>(sub: TopicSubscription<D>, ms = 2000): Promise<TopicMessage<D>> {
  const giveUp = new AbortController()
  try {
    const result = await Promise.race([
      sub.next(),
      sleep(ms, undefined, { signal: giveUp.signal }).then(() => {
        throw new Error(`no message on ${sub.topic}/${sub.key ?? '*'} within ${ms} ms`)
      }),
    ])
    if (result.done === true) throw new Error('subscription ended')
    return result.value
  } finally {
    giveUp.abort()
  }
}

/** The topic envelope written by hand, as a foreign publisher would (docs/protocol.md section 7). */
const envelope = (seq: number, data: unknown, publisher = Buffer.alloc(8, 7), version = 1): Buffer =>
  encodeCbor([version, publisher, seq, encodeCbor(data)])

describe('typed topics', function () {
  this.timeout(10_000)
  let closables: Array<{ close(): unknown }> = []
  const track = <T extends { close(): unknown }>(thing: T): T => {
    closables.push(thing)
    return thing
  }
  afterEach(async () => {
    await Promise.all(closables.map((c) => c.close()))
    closables = []
  })

  async function direct(options: ConstructorParameters<typeof Publisher>[0] = {}): Promise<{ pub: Publisher; endpoint: string }> {
    const pub = track(new Publisher(options))
    const [endpoint] = await pub.bind('tcp://127.0.0.1:*')
    return { pub, endpoint: endpoint! }
  }

  for (const transport of TRANSPORTS) {
    describe(`a subscriber to a topic over ${transport}`, () => {
      it('receives typed messages in order, and a late joiner gets the cached last value', async () => {
        const pub = track(new Publisher({ lastValueCache: true }))
        const [endpoint] = await pub.bind(bindAddress(transport))
        const sub = track(new Subscriber({ connect: endpoint! }))
        const news = sub.subscribe(News)
        await waitForFlow(pub, sub)
        await pub.publish(News, 'one', { key: 'k' })
        await pub.publish(News, 'two', { key: 'k' })
        expect([(await next(news)).data, (await next(news)).data]).to.deep.equal(['one', 'two'])
        const late = track(new Subscriber({ connect: endpoint! }))
        const replay = await next(late.subscribe(News))
        expect([replay.data, replay.seq]).to.deep.equal(['two', 2])
      })
    })
  }

  describe('a subscriber to a topic', () => {
    it('receives typed messages in order with the publisher id and contiguous sequence numbers', async () => {
      const { pub, endpoint } = await direct()
      const sub = track(new Subscriber({ connect: endpoint }))
      const prices = sub.subscribe(Prices)
      await waitForFlow(pub, sub)
      for (let i = 1; i <= 3; i++) await pub.publish(Prices, { sym: 'AAPL', px: i }, { key: 'AAPL' })
      await pub.publish(Prices, { sym: 'MSFT', px: 9 })
      const got = [await next(prices), await next(prices), await next(prices), await next(prices)]
      expect(got.map((m) => [m.key, m.seq, m.data.px])).to.deep.equal([['AAPL', 1, 1], ['AAPL', 2, 2], ['AAPL', 3, 3], ['', 1, 9]])
      expect(got.every((m) => m.topic === 'prices' && m.publisher === pub.id.toString('hex'))).to.equal(true)
      expect(sub.stats).to.include({ gaps: 0, malformed: 0, invalid: 0, dropped: 0 })
    })
  })

  describe('key and topic filters', () => {
    it('are applied by libzmq: key AAPL gets neither AAPLX, nor other keys, nor topic prices2', async () => {
      const { pub, endpoint } = await direct()
      const sub = track(new Subscriber({ connect: endpoint }))
      const aapl = sub.subscribe(Prices, { key: 'AAPL' })
      await waitForFlow(pub, sub)
      const before = sub.stats.received
      for (let i = 0; i < 50; i++) {
        await pub.publish(Prices, { sym: 'AAPLX', px: i }, { key: 'AAPLX' })
        await pub.publish(Prices, { sym: 'MSFT', px: i }, { key: 'MSFT' })
        await pub.publish(Prices2, { sym: 'AAPL', px: i }, { key: 'AAPL' })
      }
      await pub.publish(Prices, { sym: 'AAPL', px: 42 }, { key: 'AAPL' })
      // One publisher to one subscriber keeps order: anything unfiltered would have come first.
      expect((await next(aapl)).data).to.deep.equal({ sym: 'AAPL', px: 42 })
      // At most the last probes of waitForFlow, still in flight, reached the socket; not 150 messages.
      expect(sub.stats.received - before).to.be.at.most(4)
    })

    it('a topic-wide subscription gets every key, a keyless publish is key ""', async () => {
      const { pub, endpoint } = await direct()
      const sub = track(new Subscriber({ connect: endpoint }))
      const all = sub.subscribe(News)
      const keyless = sub.subscribe(News, { key: '' })
      await waitForFlow(pub, sub)
      await pub.publish(News, 'a', { key: 'x' })
      await pub.publish(News, 'b')
      expect([(await next(all)).data, (await next(all)).data]).to.deep.equal(['a', 'b'])
      expect((await next(keyless)).data).to.equal('b')
    })
  })

  describe('publishing invalid data', () => {
    it('throws RpcError INVALID_ARGUMENT at once and sends nothing', async () => {
      const { pub } = await direct()
      const bad = { sym: 'AAPL', px: 'one' } as unknown as { sym: string; px: number }
      expect(() => pub.publish(Prices, bad)).to.throw(RpcError).with.property('code', 'INVALID_ARGUMENT')
      expect(() => pub.publish(Prices, { sym: 'A', px: 1 }, { key: 'a\0b' })).to.throw(RpcError).with.property('code', 'INVALID_ARGUMENT')
      expect(pub.stats.published).to.equal(0)
      expect(() => defineTopic('bad\0name', Type.Null())).to.throw(TypeError)
    })
  })

  describe('a foreign publisher on the wire', () => {
    async function rawSetup(): Promise<{ raw: RawPublisher; sub: Subscriber; prices: TopicSubscription<{ sym: string; px: number }>; gaps: Gap[] }> {
      const raw = track(new RawPublisher({ linger: 0 }))
      await raw.bind('tcp://127.0.0.1:*')
      const gaps: Gap[] = []
      const sub = track(new Subscriber({ connect: raw.lastEndpoint!, onGap: (gap) => gaps.push(gap) }))
      const prices = sub.subscribe(Prices)
      // Readiness without a zrpc publisher: valid messages on a side key until one arrives.
      const ready = sub.subscribe(Prices, { key: 'ready' })
      let arrived = false
      void ready.next().then(() => (arrived = true))
      for (let seq = 1; !arrived; seq++) {
        await raw.send([Buffer.from('prices\0ready\0'), envelope(seq, { sym: 'r', px: 0 }, Buffer.alloc(8, 1))])
        await sleep(20)
      }
      await ready.return()
      return { raw, sub, prices, gaps }
    }
    const skipReady = async (prices: TopicSubscription<{ sym: string; px: number }>): Promise<TopicMessage<{ sym: string; px: number }>> => {
      for (;;) {
        const msg = await next(prices)
        if (msg.key !== 'ready') return msg
      }
    }

    it('drops garbage, foreign envelopes and data failing the schema, counts them, and delivers the next good one', async () => {
      const { raw, sub, prices } = await rawSetup()
      const stream = Buffer.from('prices\0k\0')
      await raw.send([stream, Buffer.from('not cbor at all')])
      await raw.send([stream, Buffer.from([0xff])])
      await raw.send([stream])
      await raw.send([stream, envelope(1, { sym: 'A', px: 1 }, Buffer.alloc(8, 7), 2)])
      await raw.send([Buffer.from('prices\0k'), envelope(1, { sym: 'A', px: 1 })])
      await raw.send([stream, encodeCbor([1, Buffer.alloc(3), 1, encodeCbor(1)])])
      await raw.send([stream, envelope(1, { sym: 'A', px: 'NaN' })])
      await raw.send([stream, envelope(2, { sym: 'A', px: 2 })])
      const msg = await skipReady(prices)
      expect(msg.data).to.deep.equal({ sym: 'A', px: 2 })
      expect(sub.stats).to.include({ malformed: 6, invalid: 1 })
    })

    it('reports a skipped sequence number as a gap with its count, and drops a repeated one', async () => {
      const { raw, sub, prices, gaps } = await rawSetup()
      const stream = Buffer.from('prices\0G\0')
      for (const seq of [1, 2, 5, 5, 6]) await raw.send([stream, envelope(seq, { sym: 'G', px: seq })])
      const seqs = [(await skipReady(prices)).seq, (await skipReady(prices)).seq, (await skipReady(prices)).seq, (await skipReady(prices)).seq]
      expect(seqs).to.deep.equal([1, 2, 5, 6])
      expect(gaps).to.deep.equal([{ topic: 'prices', key: 'G', publisher: '0707070707070707', missed: 2, seq: 5 }])
      expect(sub.stats).to.include({ gaps: 1, missed: 2, duplicates: 1 })
    })
  })

  describe('a forged sequence number on an honest stream', () => {
    it('starts a counted epoch, and the honest messages after it keep being delivered', async () => {
      const raw = track(new RawPublisher({ linger: 0 }))
      await raw.bind('tcp://127.0.0.1:*')
      const epochs: Epoch[] = []
      const sub = track(new Subscriber({ connect: raw.lastEndpoint!, onEpoch: (epoch) => epochs.push(epoch) }))
      const news = sub.subscribe(News)
      const honest = Buffer.alloc(8, 9)
      const stream = Buffer.from('news\0k\0')
      let seq = 0
      // Readiness: honest messages until one arrives.
      let first: Promise<TopicMessage<string>> | undefined = next(news, 5000)
      for (let arrived = false; !arrived; ) {
        await raw.send([stream, envelope(++seq, 'honest', honest)])
        arrived = await Promise.race([first.then(() => true), sleep(20).then(() => false)])
      }
      first = undefined
      // The attacker copies the publisher id off the wire and sends the largest sequence number.
      // encodeTopicEnvelope writes 2^53-1 as a CBOR uint64 (cbor-x would write a float, which is malformed here).
      await raw.send([stream, encodeTopicEnvelope(honest, Number.MAX_SAFE_INTEGER, encodeCbor('forged'))])
      for (let i = 0; i < 3; i++) await raw.send([stream, envelope(++seq, `after ${i}`, honest)])
      const got: string[] = []
      for (;;) {
        const msg = await next(news)
        if (msg.data !== 'honest') got.push(msg.data)
        if (msg.data === 'after 2') break
      }
      // Before: every later honest message was dropped as a duplicate of 2^53-1, for every subscriber.
      expect(got).to.deep.equal(['forged', 'after 0', 'after 1', 'after 2'])
      expect(sub.stats).to.include({ epochs: 1, gaps: 0 })
      expect(epochs).to.deep.equal([{ topic: 'news', key: 'k', publisher: '0909090909090909', seq: Number.MAX_SAFE_INTEGER, previous: seq - 3 }])
    })
  })

  describe('size limits', () => {
    it('a publisher refuses a message over its maxMessageSize with RESOURCE_EXHAUSTED and sends nothing', async () => {
      const { pub } = await direct({ maxMessageSize: 64 * 1024 })
      expect(() => pub.publish(News, 'x'.repeat(70_000))).to.throw(RpcError).with.property('code', 'RESOURCE_EXHAUSTED')
      expect(pub.stats).to.include({ published: 0, refused: 1 })
      await pub.publish(News, 'small')
      expect(pub.stats.published).to.equal(1)
    })

    const frontends = new WeakMap<TopicProxy, string>()
    const proxyFrontend = async (proxy: TopicProxy): Promise<string> => frontends.get(proxy)!
    async function throughProxy(proxyOptions: ConstructorParameters<typeof TopicProxy>[0]): Promise<{ sub: Subscriber; news: TopicSubscription<string>; pub: Publisher; raw: RawPublisher; proxy: TopicProxy; backend: string }> {
      const proxy = track(new TopicProxy(proxyOptions))
      const { frontend, backend } = await proxy.bind('tcp://127.0.0.1:*', 'tcp://127.0.0.1:*')
      const pub = track(new Publisher({ connect: frontend }))
      const raw = track(new RawPublisher({ linger: 0, sendHighWaterMark: 10 }))
      raw.connect(frontend)
      const sub = track(new Subscriber({ connect: backend }))
      const news = sub.subscribe(News)
      await waitForFlow(pub, sub)
      frontends.set(proxy, frontend)
      return { sub, news, pub, raw, proxy, backend }
    }

    /** Publishes every 50 ms until `news` gets one of these messages; fails after 2 s. */
    async function flowsWithin2s(pub: Publisher, news: TopicSubscription<string>): Promise<void> {
      const wanted = `after ${Date.now()}`
      const got = next(news, 2000)
      for (let i = 0; i < 40; i++) {
        await pub.publish(News, wanted)
        const msg = await Promise.race([got, sleep(50).then(() => undefined)])
        if (msg !== undefined) {
          if (msg.data === wanted) return
          return flowsWithin2s(pub, news)
        }
      }
      await got
    }

    it('the proxy drops a 5 MiB message (counted), and its subscribers keep receiving', async () => {
      const { sub, news, pub, raw, proxy } = await throughProxy({})
      // A multipart message whose frames are each under 4 MiB but together over it: dropped by the proxy.
      await raw.send([Buffer.from('news\0k\0'), Buffer.alloc(3 << 20), Buffer.alloc(2 << 20)])
      // One frame over 4 MiB: libzmq ends that publisher's connection at the proxy.
      await raw.send([Buffer.from('news\0k\0'), Buffer.alloc(5 << 20)])
      await flowsWithin2s(pub, news)
      await until(() => proxy.stats.oversized === 1, 2000, 'the oversized count')
      expect(sub.stats.recoveries).to.equal(0)
    })

    it('a subscriber whose connection dies on a message over its maxMessageSize recovers and resubscribes by itself', async () => {
      const { sub, news, pub, raw } = await throughProxy({ maxMessageSize: 8 << 20 })
      await raw.send([Buffer.from('news\0k\0'), Buffer.alloc(5 << 20)])
      await until(() => sub.stats.recoveries === 1, 3000, 'the subscriber to replace its socket')
      // Before: the subscriber's connection was gone for good and nothing ever arrived again.
      await flowsWithin2s(pub, news)
    })

    it('the proxy keeps listening for publishers after all of them left for a while', async () => {
      const { sub, news, pub, proxy } = await throughProxy({})
      await pub.close()
      await sleep(1200) // past the transport's recovery delay (500 ms) and the proxy's guard (1 s)
      const frontend = await proxyFrontend(proxy)
      const second = track(new Publisher({ connect: frontend }))
      await waitForFlow(second, sub)
      await flowsWithin2s(second, news)
    })

    it('the proxy passes at most maxSubscriptions distinct prefixes upstream, and subscribers on known ones keep receiving', async () => {
      const { news, pub, proxy, backend } = await throughProxy({ maxSubscriptions: 50 })
      const flood = track(new Subscriber({ connect: backend }))
      for (let i = 0; i < 500; i++) flood.subscribe(News, { key: `flood-${i}` })
      await until(() => proxy.stats.subscriptionsRefused === 451 && proxy.stats.prefixes === 50, 3000, 'the subscription bound')
      await flowsWithin2s(pub, news)
      expect(proxy.stats.prefixes).to.equal(50)
    })
  })

  describe('the last-value cache', () => {
    it('gives a late joiner the latest message of each key, and existing subscribers no repeat', async () => {
      const { pub, endpoint } = await direct({ lastValueCache: true })
      const early = track(new Subscriber({ connect: endpoint }))
      const earlyPrices = early.subscribe(Prices)
      await waitForFlow(pub, early)
      await pub.publish(Prices, { sym: 'A', px: 1 }, { key: 'A' })
      await pub.publish(Prices, { sym: 'A', px: 2 }, { key: 'A' })
      await pub.publish(Prices, { sym: 'B', px: 3 }, { key: 'B' })
      expect((await Promise.all([next(earlyPrices), next(earlyPrices), next(earlyPrices)])).map((m) => m.data.px)).to.deep.equal([1, 2, 3])

      const late = track(new Subscriber({ connect: endpoint }))
      const lateAll = late.subscribe(Prices)
      const got = [await next(lateAll), await next(lateAll)].map((m) => [m.key, m.seq, m.data.px]).sort()
      expect(got).to.deep.equal([['A', 2, 2], ['B', 1, 3]])
      const lateB = late.subscribe(Prices, { key: 'B' })
      expect((await next(lateB)).data).to.deep.equal({ sym: 'B', px: 3 })
      // The replays reached the early subscriber too, as duplicates, and were dropped.
      await until(() => early.stats.duplicates >= 3, 2000, 'duplicates at the early subscriber')
      expect(earlyPrices.buffered).to.equal(0)
    })

    it('works through a verbose proxy for every late joiner', async () => {
      const proxy = track(new PubSubProxy({ verbose: true }))
      const { frontend, backend } = await proxy.bind('tcp://127.0.0.1:*', 'tcp://127.0.0.1:*')
      const pub = track(new Publisher({ connect: frontend, lastValueCache: true }))
      const first = track(new Subscriber({ connect: backend }))
      const firstNews = first.subscribe(News)
      await waitForFlow(pub, first)
      await pub.publish(News, 'latest', { key: 'k' })
      expect((await next(firstNews)).data).to.equal('latest')
      for (let i = 0; i < 2; i++) {
        const late = track(new Subscriber({ connect: backend }))
        expect((await next(late.subscribe(News))).data).to.equal('latest')
      }
    })
  })

  describe('2 publishers and 3 subscribers through the proxy', () => {
    it('delivers every message to every subscriber, per publisher in order and without gaps', async () => {
      const proxy = track(new PubSubProxy())
      const { frontend, backend } = await proxy.bind('tcp://127.0.0.1:*', 'tcp://127.0.0.1:*')
      const pubs = [0, 1].map(() => track(new Publisher({ connect: frontend })))
      const subs = [0, 1, 2].map(() => track(new Subscriber({ connect: backend })))
      const feeds = subs.map((sub) => sub.subscribe(Prices))
      await Promise.all(pubs.flatMap((pub) => subs.map((sub) => waitForFlow(pub, sub))))
      const n = 20
      for (let i = 1; i <= n; i++) await Promise.all(pubs.map((pub, p) => pub.publish(Prices, { sym: `P${p}`, px: i }, { key: `P${p}` })))
      for (const [s, feed] of feeds.entries()) {
        const seen = new Map<string, number[]>()
        for (let i = 0; i < 2 * n; i++) {
          const msg = await next(feed)
          seen.set(msg.publisher, [...(seen.get(msg.publisher) ?? []), msg.seq])
        }
        const expected = Array.from({ length: n }, (_, i) => i + 1)
        expect([...seen.keys()].sort(), `subscriber ${s}`).to.deep.equal(pubs.map((p) => p.id.toString('hex')).sort())
        for (const seqs of seen.values()) expect(seqs).to.deep.equal(expected)
        expect(subs[s]!.stats).to.include({ gaps: 0, dropped: 0, malformed: 0 })
      }
    })
  })

  describe('unsubscribe and close', () => {
    it('breaking out of for-await unsubscribes in libzmq; other subscriptions keep flowing', async () => {
      const { pub, endpoint } = await direct()
      const sub = track(new Subscriber({ connect: endpoint }))
      const prices = sub.subscribe(Prices)
      const news = sub.subscribe(News)
      await waitForFlow(pub, sub)
      await pub.publish(Prices, { sym: 'A', px: 1 })
      for await (const msg of prices) {
        expect(msg.data.px).to.equal(1)
        break
      }
      expect(await prices.next()).to.deep.equal({ value: undefined, done: true })
      await waitForFlow(pub, sub) // the probe's subscription follows the unsubscribe upstream
      const before = sub.stats.received
      for (let i = 0; i < 30; i++) await pub.publish(Prices, { sym: 'A', px: i })
      await pub.publish(News, 'still here')
      expect((await next(news)).data).to.equal('still here')
      expect(sub.stats.received - before).to.be.at.most(4)
    })

    it('close ends pending iterators, later subscriptions end at once, publish after close refuses', async () => {
      const { pub, endpoint } = await direct()
      const sub = new Subscriber({ connect: endpoint })
      const pending = sub.subscribe(Prices).next()
      await sub.close()
      expect(await pending).to.deep.equal({ value: undefined, done: true })
      expect(await sub.subscribe(News).next()).to.deep.equal({ value: undefined, done: true })
      await pub.close()
      expect(() => pub.publish(News, 'x')).to.throw(RpcError).with.property('code', 'FAILED_PRECONDITION')
    })
  })
})
