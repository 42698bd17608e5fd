/**
 * Streams through the broker (docs/protocol.md, "Streams through a broker"): ITEMs go on to the
 * caller while the worker holds the call, CREDIT and CANCEL reach the worker that holds it, a CANCEL
 * of a call still queued takes it out of the queue, and a broker that does not carry streams (the
 * guide's reference) gets a clear error instead of a hang.
 */
import { expect } from 'chai'
import { Type } from 'typebox'
import { Broker, RpcClient, RpcError, RpcServer, defineService } from '../../lib/index.js'
import { MajordomoBroker } from '../../patterns/majordomo.js'
import { rejection, sleep, until } from '../helpers/endpoints.js'

const HEARTBEAT = { heartbeatMs: 200, liveness: 5 }

const Feed = defineService('feed', {
  count: { params: Type.Object({ to: Type.Integer() }), stream: Type.Integer() },
  slow: { params: Type.Object({ ms: Type.Integer() }), result: Type.Integer() },
})

describe('streams through the broker', function () {
  let broker: Broker
  let endpoint: string
  let server: RpcServer
  let client: RpcClient
  let produced: number
  let closed: number
  let aborted: string[]

  beforeEach(async () => {
    produced = 0
    closed = 0
    aborted = []
    broker = new Broker(HEARTBEAT)
    ;[endpoint] = (await broker.bind('tcp://127.0.0.1:*')) as [string]
    server = new RpcServer().implement(Feed, {
      async *count({ to }, ctx) {
        ctx.signal.addEventListener('abort', () => aborted.push((ctx.signal.reason as RpcError).code))
        try {
          for (let n = 0; n < to; n++) {
            produced++
            yield n
          }
        } finally {
          closed++
        }
      },
      slow: async ({ ms }, ctx) => {
        ctx.signal.addEventListener('abort', () => aborted.push((ctx.signal.reason as RpcError).code))
        await sleep(ms)
        return ms
      },
    })
    await server.connectBroker(endpoint, { ...HEARTBEAT, concurrency: 2 })
    await until(() => broker.stats().workers === 1, 5000, 'the worker')
    client = new RpcClient({ broker: endpoint })
  })

  afterEach(async () => {
    await client.close()
    await server.close({ timeoutMs: 500 })
    await broker.close()
  })

  it('carries every item in order, and the worker is free again after', async () => {
    const got: number[] = []
    for await (const n of client.service(Feed).count({ to: 500 })) got.push(n)
    expect(got).to.deep.equal([...Array(500).keys()])
    await until(() => broker.stats().services['feed']?.inFlight === 0, 1000, 'the worker to be free')
    expect(broker.stats().followUps).to.be.greaterThan(0) // CREDITs went through
  })

  it('flow control holds through the broker: a slow reader keeps the worker about a window ahead', async () => {
    const window = 8
    let taken = 0
    let maxAhead = 0
    for await (const n of client.service(Feed).count({ to: 1000 }, { window })) {
      expect(n).to.equal(taken)
      if (++taken % 20 === 0) await sleep(30)
      maxAhead = Math.max(maxAhead, produced - taken)
      if (taken === 100) break
    }
    expect(maxAhead).to.be.at.most(window + 1)
    expect(maxAhead).to.be.at.least(window / 2)
  })

  it('breaking out of the loop reaches the handler through the broker (CANCELLED) and frees the worker', async () => {
    let taken = 0
    for await (const n of client.service(Feed).count({ to: 1_000_000 }, { window: 4 })) {
      expect(n).to.equal(taken)
      if (++taken === 10) break
    }
    await until(() => closed === 1, 2000, 'the generator to be closed')
    expect(aborted).to.deep.equal(['CANCELLED'])
    await until(() => broker.stats().services['feed']?.inFlight === 0, 1000, 'the worker to be free')
    expect(produced).to.be.lessThan(100)
  })

  it("a unary call's cancel reaches a running handler through the broker, and takes a queued call out of the queue", async () => {
    const feed = client.service(Feed)
    const running = [new AbortController(), new AbortController()]
    const calls = running.map((c) => rejection(feed.slow({ ms: 2000 }, { signal: c.signal })))
    await until(() => broker.stats().services['feed']?.inFlight === 2, 1000, 'both credits in use')
    const queued = new AbortController()
    const waiting = rejection(feed.slow({ ms: 10 }, { signal: queued.signal }))
    await until(() => broker.stats().services['feed']?.queued === 1, 1000, 'the third call to queue')
    queued.abort()
    expect(await waiting).to.be.instanceOf(RpcError).with.property('code', 'CANCELLED')
    await until(() => broker.stats().cancelledInQueue === 1, 1000, 'the queued call to leave the queue')
    expect(broker.stats().services['feed']?.queued).to.equal(0)
    for (const c of running) c.abort()
    for (const err of await Promise.all(calls)) expect(err).to.be.instanceOf(RpcError).with.property('code', 'CANCELLED')
    await until(() => aborted.length === 2, 1000, 'both handlers to be told')
    expect(aborted).to.deep.equal(['CANCELLED', 'CANCELLED'])
    await until(() => broker.stats().services['feed']?.inFlight === 0, 1000, 'the worker to be free')
    expect(await feed.slow({ ms: 1 })).to.equal(1)
  })
})

describe('streams through a broker that does not carry them', function () {
  it('fail at once with UNIMPLEMENTED through the guide’s reference broker (it answers mmi.zrpc with 501)', async () => {
    const reference = new MajordomoBroker(HEARTBEAT)
    const endpoint = await reference.bind('tcp://127.0.0.1:*')
    const client = new RpcClient({ broker: endpoint })
    try {
      const started = Date.now()
      const err = await rejection(
        (async () => {
          for await (const n of client.service(Feed).count({ to: 3 }, { timeoutMs: 5000 })) void n
        })(),
      )
      expect(err).to.be.instanceOf(RpcError).with.property('code', 'UNIMPLEMENTED')
      expect((err as RpcError).message).to.match(/need a zrpc broker/)
      expect(Date.now() - started).to.be.lessThan(2000)
    } finally {
      await client.close()
      await reference.close()
    }
  })
})
