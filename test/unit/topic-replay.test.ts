import { expect } from 'chai'
import { isTopicPrefix, Replayer, type CachedStream, type ReplayCounters } from '../../lib/pubsub/replay.js'
import { until } from '../helpers/endpoints.js'

function host(keys: number): { streams: Map<string, Map<string, CachedStream>>; sent: string[] } {
  const topic = new Map<string, CachedStream>()
  for (let i = 0; i < keys; i++) topic.set(`k${i}`, { frame: Buffer.from(`t\0k${i}\0`), last: Buffer.from([i & 0xff]) })
  return { streams: new Map([['t', topic]]), sent: [] }
}

const counters = (): ReplayCounters => ({ replayed: 0, replayPasses: 0, replaysCoalesced: 0, replaysRefused: 0, replaysDropped: 0 })

describe('last-value replays', function () {
  this.timeout(5000)
  const make = (keys: number, intervalMs = 50): { replayer: Replayer; c: ReplayCounters; sent: string[] } => {
    const h = host(keys)
    const c = counters()
    const replayer = new Replayer(
      { streams: (t) => h.streams.get(t), send: (frame) => (h.sent.push(frame.toString()), true), queuedBytes: () => 0 },
      c,
      { intervalMs },
    )
    return { replayer, c, sent: h.sent }
  }

  it('cost one pass for 200 identical subscribes arriving together', async () => {
    const { replayer, c } = make(5000)
    try {
      for (let i = 0; i < 200; i++) replayer.subscribed(Buffer.from('t\0'))
      await until(() => c.replayPasses >= 1 && c.replaysCoalesced >= 199, 2000, 'the pass')
      await new Promise((resolve) => setTimeout(resolve, 150))
      // Today each subscribe was a full pass: 200 x 5,000 = 1,000,000 replays.
      expect(c.replayed).to.equal(5000)
      expect(c.replaysCoalesced).to.equal(199)
    } finally {
      replayer.close()
    }
  })

  it('serves a subscribe that arrives during a pass with one more pass after the interval, not one each', async () => {
    const { replayer, c } = make(5000, 30)
    try {
      replayer.subscribed(Buffer.from('t\0'))
      // The pass yields every few ms: these arrive while it runs or rests.
      for (let i = 0; i < 20; i++) {
        await new Promise((resolve) => setImmediate(resolve))
        replayer.subscribed(Buffer.from('t\0'))
      }
      await until(() => c.replayPasses === 2, 2000, 'the second pass')
      await new Promise((resolve) => setTimeout(resolve, 100))
      expect(c.replayPasses).to.equal(2)
      expect(c.replayed).to.equal(10_000)
    } finally {
      replayer.close()
    }
  })

  it('answers one key with one lookup, and refuses prefixes no zrpc subscriber sends', async () => {
    const { replayer, c, sent } = make(5000)
    try {
      replayer.subscribed(Buffer.from('t\0k42\0'))
      for (const prefix of ['', 't', 't\0k', '\0', 't\0k1\0x']) replayer.subscribed(Buffer.from(prefix))
      await until(() => c.replayPasses === 1, 1000, 'the pass')
      expect(sent).to.deep.equal(['t\0k42\0'])
      expect(c.replaysRefused).to.equal(5)
      expect(isTopicPrefix(Buffer.from('t\0'))).to.equal(true)
    } finally {
      replayer.close()
    }
  })
})
