/**
 * Fuzz: a Subscriber connected to a raw PUB that publishes generated and mutated topic messages on
 * the prefixes it subscribed to: heads with any key or junk after the prefix, topic envelopes with
 * any publisher id, sequence number and data (right or wrong for the schema), bad items, mutated
 * bytes, and messages of one or three frames.
 *
 * Each run ends with a marker message and checks:
 * ```
 *   every message that passed the filter is counted once:  received = malformed + duplicates + invalid + delivered
 *   not two frames, envelope unreadable, head not name\0key\0     malformed (at least these)
 *   what a subscription yields matches its topic's schema, and delivered = yielded + dropped
 * ```
 * Nothing may crash, RSS stays bounded, and an honest publisher's messages arrive after.
 */
import { expect } from 'chai'
import fc from 'fast-check'
import { setTimeout as sleep } from 'node:timers/promises'
import { Type } from 'typebox'
import { Publisher as RawPublisher } from 'zeromq'
import { Publisher, Subscriber, defineTopic, waitForFlow, type TopicMessage, type TopicSubscription } from '../../lib/index.js'
import { DEFAULT_CBOR_LIMITS, encodeCbor } from '../../lib/codec/cbor.js'
import { decodeTopicEnvelope, encodeTopicEnvelope } from '../../lib/pubsub/frame.js'
import { parseStreamFrame } from '../../lib/pubsub/topic.js'
import { topicBodyArb, topicHeadArb } from './arbitraries.js'
import { CrashWatch, Inbox, RSS_BOUND_MB, RssWatch, fuzzParameters, reportFuzz } from './harness.js'

const Fz = defineTopic('fz', Type.Integer())
const Px = defineTopic('px', Type.Object({ sym: Type.String(), px: Type.Number() }))
const Live = defineTopic('live', Type.Integer())
const PREFIXES = ['fz\0', 'px\0']
const MARKER_ID = Buffer.from('MARKER00')
const PUBLISHERS = [MARKER_ID, Buffer.from('PUBLISH1'), Buffer.from('PUBLISH2')]
const WAIT_MS = 5000

/** Reads a subscription into an inbox until it ends. */
function drain<D>(sub: TopicSubscription<D>, into: Inbox<TopicMessage<D>>): Promise<void> {
  return (async () => {
    for await (const msg of sub) into.push(msg)
  })()
}

const passesFilter = (message: readonly Buffer[]): boolean => {
  const head = message[0]!
  return PREFIXES.some((p) => head.length >= p.length && head.subarray(0, p.length).equals(Buffer.from(p)))
}

/** Certainly malformed, whatever the stream's history: the subscriber counts these before anything else. */
const surelyMalformed = (message: readonly Buffer[]): boolean =>
  message.length !== 2 || typeof decodeTopicEnvelope(message[1]!, DEFAULT_CBOR_LIMITS) === 'string' || parseStreamFrame(message[0]!) === undefined

describe('fuzz: a Subscriber fed generated and mutated topic messages', function () {
  this.timeout(180_000)

  it('counts every message once, delivers only what fits the schema, never crashes, and keeps receiving an honest publisher', async () => {
    const raw = new RawPublisher({ linger: 0, sendHighWaterMark: 100_000 })
    await raw.bind('tcp://127.0.0.1:*')
    const honestPub = new Publisher()
    const [honestEndpoint] = await honestPub.bind('tcp://127.0.0.1:*')
    const sub = new Subscriber({ connect: [raw.lastEndpoint!, honestEndpoint!], bufferSize: 100_000 })
    const fz = new Inbox<TopicMessage<number>>()
    const px = new Inbox<TopicMessage<{ sym: string; px: number }>>()
    const fzSub = sub.subscribe(Fz)
    const pxSub = sub.subscribe(Px)
    const live = sub.subscribe(Live)
    const drains = [drain(fzSub, fz), drain(pxSub, px)]
    const watch = new CrashWatch()
    let markerSeq = 0
    const marker = async (): Promise<number> => {
      const seq = ++markerSeq
      await raw.send([Buffer.from('fz\0marker\0'), encodeTopicEnvelope(MARKER_ID, seq, encodeCbor(-seq))])
      return seq
    }
    // The raw publisher has the subscriptions once a marker gets through.
    for (let i = 0; i < 100 && fz.items.length === 0; i++) {
      await marker()
      await sleep(20)
    }
    expect(fz.items.length, 'markers through').to.be.above(0)
    const rss = new RssWatch()
    const started = performance.now()
    const totals = { runs: 0, messages: 0, passed: 0 }
    const message = fc.oneof(
      { weight: 12, arbitrary: fc.tuple(topicHeadArb(PREFIXES), topicBodyArb(PUBLISHERS)).map(([h, b]) => [h, b]) },
      { weight: 1, arbitrary: topicHeadArb(PREFIXES).map((h) => [h]) },
      { weight: 1, arbitrary: fc.tuple(topicHeadArb(PREFIXES), topicBodyArb(PUBLISHERS), fc.uint8Array({ maxLength: 8 })).map(([h, b, x]) => [h, b, Buffer.from(x)]) },
    )
    try {
      const parameters = fuzzParameters(0x5b5c1, 6000)
      await fc.assert(
        fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 8 }), async (batch) => {
          totals.runs++
          const before = { ...sub.stats }
          fz.clear()
          px.clear()
          for (const m of batch) await raw.send(m)
          const seq = await marker()
          await fz.until(() => fz.items.some((m) => m.publisher === MARKER_ID.toString('hex') && m.seq === seq), WAIT_MS, `marker ${seq}`)
          const passed = batch.filter(passesFilter).length + 1
          totals.messages += batch.length
          totals.passed += passed
          const s = sub.stats
          const d = (k: keyof typeof s): number => s[k] - before[k]
          expect(d('received'), 'received').to.equal(passed)
          expect(d('received'), 'each message counted once').to.equal(d('malformed') + d('duplicates') + d('invalid') + d('delivered'))
          expect(d('malformed'), 'malformed').to.be.at.least(batch.filter((m) => passesFilter(m) && surelyMalformed(m)).length)
          expect(d('delivered'), 'delivered').to.equal(fz.items.length + px.items.length + d('dropped'))
          for (const m of fz.items) expect(Number.isInteger(m.data), `fz item ${JSON.stringify(m.data)}`).to.equal(true)
          for (const m of px.items) expect(typeof m.data.sym === 'string' && typeof m.data.px === 'number', `px item ${JSON.stringify(m.data)}`).to.equal(true)
          watch.check()
          expect(rss.growth, 'RSS growth (MB)').to.be.below(RSS_BOUND_MB)
        }),
        parameters,
      )
      // An honest publisher's messages still arrive.
      await waitForFlow(honestPub, sub)
      const next = live.next()
      await honestPub.publish(Live, 42)
      const got = await Promise.race([next, sleep(WAIT_MS).then(() => undefined)])
      expect(got?.value?.data).to.equal(42)
      watch.check()
      const s = sub.stats
      reportFuzz('subscriber', {
        seed: parameters.seed!,
        runs: totals.runs,
        messages: totals.messages,
        passedFilter: totals.passed,
        malformed: s.malformed,
        invalid: s.invalid,
        duplicates: s.duplicates,
        delivered: s.delivered,
        epochs: s.epochs,
        gaps: s.gaps,
        recoveries: s.recoveries,
        rssGrowthMb: rss.growth,
        seconds: (performance.now() - started) / 1000,
      })
    } finally {
      rss.stop()
      watch.stop()
      await sub.close()
      await Promise.all(drains)
      await honestPub.close()
      raw.close()
    }
  })
})
