import { expect } from 'chai'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  PubSubProxy,
  PubSubPublisher,
  PubSubSubscriber,
  main,
  waitForFlow,
  type Subscription,
} from '../../patterns/pubsub.js'

const b = (s: string): Buffer => Buffer.from(s)
const texts = (message: Buffer[] | undefined): string[] => (message ?? []).map(String)

// Fails instead of hanging when a message never comes.
async function nextWithin(sub: Subscription, ms = 2000): Promise<Buffer[] | undefined> {
  const controller = new AbortController()
  try {
    const result = await Promise.race([
      sub.next(),
      sleep(ms, undefined, { signal: controller.signal }).then(() => {
        throw new Error(`no message on '${String(sub.prefix)}' within ${ms} ms`)
      }),
    ])
    return result.done === true ? undefined : result.value
  } finally {
    controller.abort()
  }
}

async function until(condition: () => boolean, what: string, ms = 2000): Promise<void> {
  for (const deadline = Date.now() + ms; !condition(); await sleep(10)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
  }
}

describe('pubsub pattern', function () {
  // Everything a test opens goes here and is closed after it, pass or fail.
  let closables: Array<{ close(): Promise<void> }> = []
  const track = <T extends { close(): Promise<void> }>(thing: T): T => {
    closables.push(thing)
    return thing
  }
  afterEach(async function () {
    await Promise.all(closables.map((c) => c.close()))
    closables = []
  })

  async function direct(): Promise<{ pub: PubSubPublisher; endpoint: string }> {
    const pub = track(new PubSubPublisher())
    return { pub, endpoint: await pub.bind('tcp://127.0.0.1:*') }
  }

  describe('main() with 2 publishers and 2 subscribers through the proxy', function () {
    it('delivers every message to each matching subscription and nothing else', async function () {
      const summary = await main({ messages: 4 })
      expect(summary.published).to.equal(8)
      expect(summary.received).to.deep.equal({ 'A:weather.': 4, 'A:news.': 4, 'B:news.': 4 })
      expect(summary.dropped).to.equal(0)
      expect(summary.proxy.messages).to.be.at.least(8)
      expect(summary.upstream).to.deep.equal(['news.', 'weather.'])
    })
  })

  describe('a subscription to one prefix', function () {
    it('does not receive messages for another prefix', async function () {
      const { pub, endpoint } = await direct()
      const sub = track(new PubSubSubscriber())
      sub.connect(endpoint)
      const apples = sub.subscribe('apple.')
      await waitForFlow(pub, sub, '$probe')
      await pub.publish([b('pear.1'), b('no')])
      await pub.publish([b('apple.1'), b('yes')])
      // One publisher to one subscriber keeps order: had pear.1 passed the filter it would come first.
      expect(texts(await nextWithin(apples))).to.deep.equal(['apple.1', 'yes'])
      expect(apples.buffered).to.equal(0)
    })
  })

  describe('several subscriptions on one subscriber', function () {
    it('gives a message to every subscription whose prefix matches', async function () {
      const { pub, endpoint } = await direct()
      const sub = track(new PubSubSubscriber())
      sub.connect(endpoint)
      const short = sub.subscribe('a')
      const long = sub.subscribe('ab')
      await waitForFlow(pub, sub, '$probe')
      await pub.publish([b('abc')])
      await pub.publish([b('ax')])
      expect(texts(await nextWithin(short))).to.deep.equal(['abc'])
      expect(texts(await nextWithin(long))).to.deep.equal(['abc'])
      expect(texts(await nextWithin(short))).to.deep.equal(['ax'])
      expect(long.buffered).to.equal(0)
    })
  })

  describe('two subscribers on one publisher', function () {
    it('delivers the same message to both', async function () {
      const { pub, endpoint } = await direct()
      const subs = [track(new PubSubSubscriber()), track(new PubSubSubscriber())]
      const feeds = subs.map((sub) => {
        sub.connect(endpoint)
        return sub.subscribe('t.')
      })
      await Promise.all(subs.map((sub) => waitForFlow(pub, sub, '$probe')))
      await pub.publish([b('t.1'), b('hello')])
      for (const feed of feeds) expect(texts(await nextWithin(feed))).to.deep.equal(['t.1', 'hello'])
    })
  })

  describe('breaking out of a for await loop', function () {
    it('unsubscribes that prefix at the publisher and leaves the other subscriptions running', async function () {
      const { pub, endpoint } = await direct()
      const sub = track(new PubSubSubscriber())
      sub.connect(endpoint)
      const first = sub.subscribe('a.')
      const other = sub.subscribe('b.')
      await waitForFlow(pub, sub, '$probe')
      await until(() => !pub.subscriptions().some((p) => String(p) === '$probe'), 'the probe to unsubscribe')
      await pub.publish([b('a.1')])
      for await (const message of first) {
        expect(texts(message)).to.deep.equal(['a.1'])
        break
      }
      await until(() => !pub.subscriptions().some((p) => String(p) === 'a.'), "'a.' to disappear upstream")
      expect(pub.subscriptions().map(String)).to.deep.equal(['b.'])
      expect(await first.next()).to.deep.equal({ value: undefined, done: true })
      await pub.publish([b('b.1')])
      expect(texts(await nextWithin(other))).to.deep.equal(['b.1'])
    })
  })

  describe('a consumer slower than the publisher', function () {
    it('keeps the newest bufferSize messages and counts the dropped ones', async function () {
      const { pub, endpoint } = await direct()
      const sub = track(new PubSubSubscriber({ bufferSize: 3 }))
      sub.connect(endpoint)
      const slow = sub.subscribe('data.')
      const marker = sub.subscribe('end')
      await waitForFlow(pub, sub, '$probe')
      for (let i = 0; i < 10; i++) await pub.publish([b('data.'), b(String(i))])
      await pub.publish([b('end')])
      await nextWithin(marker) // everything before it has been dispatched
      expect(slow.dropped).to.equal(7)
      expect(slow.buffered).to.equal(3)
      const kept = [await nextWithin(slow), await nextWithin(slow), await nextWithin(slow)]
      expect(kept.map((m) => String(m?.[1]))).to.deep.equal(['7', '8', '9'])
    })
  })

  describe('the proxy', function () {
    async function proxied(): Promise<{ frontend: string; backend: string; proxy: PubSubProxy }> {
      const proxy = track(new PubSubProxy())
      return { proxy, ...(await proxy.bind('tcp://127.0.0.1:*', 'tcp://127.0.0.1:*')) }
    }

    it('forwards a subscription upstream to the publisher, and the unsubscription after break', async function () {
      const { frontend, backend, proxy } = await proxied()
      const pub = track(new PubSubPublisher())
      pub.connect(frontend)
      const sub = track(new PubSubSubscriber())
      sub.connect(backend)
      const feed = sub.subscribe('up.')
      await pub.waitForSubscriber('up.anything', 2000)
      expect(proxy.stats.subscriptions).to.equal(1)
      await feed.return()
      await until(() => pub.subscriptions().length === 0, 'the unsubscription upstream')
      expect(proxy.stats.unsubscriptions).to.equal(1)
    })

    it('carries messages from several publishers to several subscribers', async function () {
      const { frontend, backend, proxy } = await proxied()
      const pubs = ['x.', 'y.'].map(() => track(new PubSubPublisher()))
      for (const pub of pubs) pub.connect(frontend)
      const subs = [track(new PubSubSubscriber()), track(new PubSubSubscriber())]
      const feeds = subs.map((sub) => {
        sub.connect(backend)
        return sub.subscribe('')
      })
      for (const [i, pub] of pubs.entries()) {
        for (const sub of subs) await waitForFlow(pub, sub, `$probe${i}`)
      }
      await pubs[0]?.publish([b('x.1')])
      await pubs[1]?.publish([b('y.1')])
      for (const feed of feeds) {
        const got: string[] = []
        while (got.length < 2) {
          const topic = String((await nextWithin(feed))?.[0])
          if (!topic.startsWith('$probe')) got.push(topic)
        }
        expect(got.sort()).to.deep.equal(['x.1', 'y.1'])
      }
      expect(proxy.stats.messages).to.be.at.least(2)
    })
  })

  describe('close()', function () {
    it('ends waiting iterators, rejects waits and leaves no timer behind', async function () {
      const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
      await sleep(1) // mocha arms this test's own timeout timer after the test function starts
      const before = timers()
      const proxy = new PubSubProxy()
      const { frontend, backend } = await proxy.bind('tcp://127.0.0.1:*', 'tcp://127.0.0.1:*')
      const pub = new PubSubPublisher()
      pub.connect(frontend)
      const sub = new PubSubSubscriber()
      sub.connect(backend)
      const feed = sub.subscribe('never.')
      const waiting = feed.next()
      const waitingForSubscriber = pub.waitForSubscriber('nobody.', 60_000).then(
        () => 'resolved',
        (err: unknown) => String(err),
      )
      await Promise.all([sub.close(), pub.close(), proxy.close()])

      expect(await waiting).to.deep.equal({ value: undefined, done: true })
      expect(await waitingForSubscriber).to.include('closed')
      expect(await sub.subscribe('late.').next()).to.deep.equal({ value: undefined, done: true })
      expect(timers()).to.equal(before)
    })
  })
})
