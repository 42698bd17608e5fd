/**
 * Server streams, direct: items in order and typed, flow control by credit (a slow reader keeps the
 * server at most about a window ahead), and every way a stream ends, on both sides.
 */
import { expect } from 'chai'
import { Type } from 'typebox'
import { RpcClient, RpcError, RpcServer, defineService, type CallContext, type CallInfo } from '../../lib/index.js'
import { Kind, encodeError, encodeItem, parseFrame } from '../../lib/codec/envelope.js'
import { encodeCbor } from '../../lib/codec/cbor.js'
import { RawServer } from './client-raw-server.js'
import { rejection, sleep, until } from '../helpers/endpoints.js'

const Feed = defineService('feed', {
  count: { params: Type.Object({ to: Type.Integer(), failAt: Type.Optional(Type.Integer()) }), stream: Type.Object({ n: Type.Integer() }) },
  tail: { params: Type.Object({}), stream: Type.Integer() },
  wrongItem: { params: Type.Object({}), stream: Type.Integer() },
  notAGenerator: { params: Type.Object({}), stream: Type.Integer() },
  add: { params: Type.Object({ a: Type.Number(), b: Type.Number() }), result: Type.Number() },
})

/** What the server side saw: items produced, streams whose generator was closed, and why their signal aborted. */
interface Seen {
  produced: number
  closed: number
  abortReasons: string[]
}

function feedServer(seen: Seen): RpcServer {
  return new RpcServer().implement(Feed, {
    async *count({ to, failAt }) {
      try {
        for (let n = 0; n < to; n++) {
          if (n === failAt) throw new RpcError('NOT_FOUND', `no item ${n}`)
          seen.produced++
          yield { n }
        }
      } finally {
        seen.closed++
      }
    },
    async *tail(_params, ctx: CallContext) {
      ctx.signal.addEventListener('abort', () => seen.abortReasons.push((ctx.signal.reason as RpcError).code))
      try {
        for (let n = 0; ; n++) {
          seen.produced++
          yield n
          await sleep(5)
        }
      } finally {
        seen.closed++
      }
    },
    async *wrongItem() {
      yield 1
      yield 'two' as unknown as number
    },
    notAGenerator: (() => 42) as never,
    add: ({ a, b }) => a + b,
  })
}

describe('streams (direct)', function () {
  let server: RpcServer
  let client: RpcClient
  let seen: Seen
  let endpoint: string

  beforeEach(async () => {
    seen = { produced: 0, closed: 0, abortReasons: [] }
    server = feedServer(seen)
    ;[endpoint] = (await server.bind('tcp://127.0.0.1:*')) as [string]
    client = new RpcClient({ connect: endpoint })
  })

  afterEach(async () => {
    await client.close()
    await server.close({ timeoutMs: 500 })
  })

  it('yields every item in order, typed, then ends', async () => {
    const feed = client.service(Feed)
    const got: number[] = []
    const info: CallInfo = {}
    for await (const item of feed.count({ to: 100 }, { info })) got.push(item.n)
    expect(got).to.deep.equal([...Array(100).keys()])
    expect(info).to.deep.equal({ endpoint, attempts: 1 })
    await until(() => seen.closed === 1, 1000, 'the generator to finish')
  })

  it('a stream of none ends at once; unary calls go on beside streams', async () => {
    const feed = client.service(Feed)
    const empty: unknown[] = []
    for await (const item of feed.count({ to: 0 })) empty.push(item)
    expect(empty).to.deep.equal([])
    const [a, b, sum] = await Promise.all([collect(feed.count({ to: 50 })), collect(feed.count({ to: 30 })), feed.add({ a: 2, b: 3 })])
    expect(a).to.have.length(50)
    expect(b).to.have.length(30)
    expect(sum).to.equal(5)
  })

  it('a slow reader keeps the server at most about a window ahead (credit flow control)', async () => {
    const feed = client.service(Feed)
    const window = 8
    let taken = 0
    let maxAhead = 0
    for await (const item of feed.count({ to: 200 }, { window })) {
      expect(item.n).to.equal(taken)
      taken++
      if (taken % 20 === 0) await sleep(30) // the server has time to run ahead, if it could
      maxAhead = Math.max(maxAhead, seen.produced - taken)
      if (taken === 100) break
    }
    // At most the window, plus the item the generator is suspended on.
    expect(maxAhead).to.be.at.most(window + 1)
    expect(maxAhead).to.be.at.least(window / 2) // it did run ahead: the test can see flow control
    await until(() => seen.closed === 1, 1000, 'the generator to be closed')
    expect(seen.produced).to.be.at.most(100 + window + 1)
  })

  it('breaking out of the loop cancels the stream: the handler is told (CANCELLED) and its generator closed', async () => {
    const feed = client.service(Feed)
    let taken = 0
    for await (const n of feed.tail({})) {
      expect(n).to.equal(taken)
      if (++taken === 5) break
    }
    await until(() => seen.closed === 1, 1000, 'the generator to be closed')
    expect(seen.abortReasons).to.deep.equal(['CANCELLED'])
  })

  it("the caller's signal ends the loop with CANCELLED, and the server's generator", async () => {
    const feed = client.service(Feed)
    const controller = new AbortController()
    const err = await rejection(
      (async () => {
        for await (const n of feed.tail({}, { signal: controller.signal })) if (n === 3) controller.abort()
      })(),
    )
    expect(err).to.be.instanceOf(RpcError).with.property('code', 'CANCELLED')
    await until(() => seen.closed === 1, 1000, 'the generator to be closed')
    expect(seen.abortReasons).to.deep.equal(['CANCELLED'])
  })

  it('the deadline ends the stream on both sides: DEADLINE_EXCEEDED', async () => {
    const feed = client.service(Feed)
    const items: number[] = []
    const err = await rejection(
      (async () => {
        for await (const n of feed.tail({}, { timeoutMs: 150 })) items.push(n)
      })(),
    )
    expect(err).to.be.instanceOf(RpcError).with.property('code', 'DEADLINE_EXCEEDED')
    expect(items.length).to.be.greaterThan(3)
    await until(() => seen.closed === 1, 1000, 'the generator to be closed')
    expect(seen.abortReasons).to.deep.equal(['DEADLINE_EXCEEDED'])
  })

  it("a handler's error ends the loop with that error, after the items before it", async () => {
    const feed = client.service(Feed)
    const items: number[] = []
    const err = await rejection(
      (async () => {
        for await (const item of feed.count({ to: 10, failAt: 4 })) items.push(item.n)
      })(),
    )
    expect(items).to.deep.equal([0, 1, 2, 3])
    expect(err).to.be.instanceOf(RpcError).with.property('code', 'NOT_FOUND')
  })

  it('an item that breaks the schema ends the stream with INTERNAL; a handler that is no generator too', async () => {
    const feed = client.service(Feed)
    const items: number[] = []
    const wrong = await rejection(
      (async () => {
        for await (const n of feed.wrongItem({})) items.push(n)
      })(),
    )
    expect(items).to.deep.equal([1])
    expect(wrong).to.be.instanceOf(RpcError).with.property('code', 'INTERNAL')
    expect((wrong as RpcError).message).to.match(/item of feed.wrongItem/)
    const none = await rejection(collect(feed.notAGenerator({})))
    expect(none).to.be.instanceOf(RpcError).with.property('code', 'INTERNAL')
  })

  it('the server closing ends its streams at once with UNAVAILABLE, not after the grace period', async () => {
    const feed = client.service(Feed)
    const reading = rejection(collect(feed.tail({}, { timeoutMs: 10_000 })))
    await until(() => seen.produced > 3, 1000, 'the stream to flow')
    const started = Date.now()
    await server.close({ timeoutMs: 5000 })
    expect(Date.now() - started).to.be.lessThan(2000)
    const err = await reading
    expect(err).to.be.instanceOf(RpcError).with.property('code', 'UNAVAILABLE')
    expect(seen.closed).to.equal(1)
  })

  it('bad params and a bad window fail on the first next(), before anything is sent', async () => {
    const feed = client.service(Feed)
    const bad = await rejection(collect(feed.count({ to: 'x' as unknown as number })))
    expect(bad).to.be.instanceOf(RpcError).with.property('code', 'INVALID_ARGUMENT')
    const window = await rejection(collect(feed.count({ to: 1 }, { window: 0 })))
    expect(window).to.be.instanceOf(RpcError).with.property('code', 'INVALID_ARGUMENT')
    expect(server.stats.calls.received).to.equal(0)
  })

  it('a stream that is never read opens nothing', async () => {
    const feed = client.service(Feed)
    feed.tail({})
    await sleep(50)
    expect(server.stats.calls.received).to.equal(0)
  })

  it('a contract that disagrees with the server gets FAILED_PRECONDITION, either way round', async () => {
    const AsUnary = defineService('feed', { tail: { params: Type.Object({}), result: Type.Integer() } })
    const AsStream = defineService('feed', { add: { params: Type.Object({ a: Type.Number(), b: Type.Number() }), stream: Type.Number() } })
    const unary = await rejection(client.service(AsUnary).tail({}))
    expect(unary).to.be.instanceOf(RpcError).with.property('code', 'FAILED_PRECONDITION')
    expect((unary as RpcError).message).to.match(/feed.tail is a stream here/)
    const stream = await rejection(collect(client.service(AsStream).add({ a: 1, b: 2 })))
    expect(stream).to.be.instanceOf(RpcError).with.property('code', 'FAILED_PRECONDITION')
  })
})

describe('streams against a raw server (the client keeps to the rules)', function () {
  let raw: RawServer | undefined
  let client: RpcClient | undefined

  afterEach(async () => {
    await client?.close()
    await raw?.close()
  })

  it('a server that sends more items than granted is cut off with INTERNAL, and sent a CANCEL', async () => {
    const kinds: number[] = []
    raw = await RawServer.start('tcp://127.0.0.1:*', async (from, [frame], peer) => {
      for (const env of parseFrame(frame!)) {
        kinds.push(env.kind as number)
        // Five items in one frame: they arrive together, before the loop can take any and grant more.
        if (env.kind === Kind.Request) await peer.send(from, Buffer.concat([0, 1, 2, 3, 4].map((i) => encodeItem(env.id, encodeCbor(i)))))
      }
    })
    client = new RpcClient({ connect: raw.endpoint })
    const err = await rejection(collect(client.service(Feed).tail({}, { window: 2 })))
    expect(err).to.be.instanceOf(RpcError).with.property('code', 'INTERNAL')
    expect((err as RpcError).message).to.match(/more items .* than this client granted/)
    await until(() => kinds.includes(Kind.Cancel), 1000, 'the CANCEL')
  })

  it('items for a unary call end it with INTERNAL; an ERROR ends a stream with its code', async () => {
    raw = await RawServer.start('tcp://127.0.0.1:*', async (from, [frame], peer) => {
      for (const env of parseFrame(frame!)) {
        if (env.kind !== Kind.Request) continue
        if (env.window === undefined) await peer.send(from, encodeItem(env.id, encodeCbor(1)))
        else await peer.send(from, encodeError(env.id, 'PERMISSION_DENIED', 'not you'))
      }
    })
    client = new RpcClient({ connect: raw.endpoint })
    const unary = await rejection(client.service(Feed).add({ a: 1, b: 2 }))
    expect(unary).to.be.instanceOf(RpcError).with.property('code', 'INTERNAL')
    const stream = await rejection(collect(client.service(Feed).tail({})))
    expect(stream).to.be.instanceOf(RpcError).with.property('code', 'PERMISSION_DENIED')
  })

  it('grants credit as the loop reads: CREDITs add up to what it took', async () => {
    const credits: number[] = []
    raw = await RawServer.start('tcp://127.0.0.1:*', async (from, [frame], peer) => {
      for (const env of parseFrame(frame!)) {
        if (env.kind === Kind.Request) {
          expect(env.window).to.equal(4)
          for (let i = 0; i < 4; i++) await peer.send(from, encodeItem(env.id, encodeCbor(i)))
        } else if (env.kind === Kind.Credit) {
          credits.push(env.n)
          for (let i = 0; i < env.n; i++) await peer.send(from, encodeItem(env.id, encodeCbor(i)))
        }
      }
    })
    client = new RpcClient({ connect: raw.endpoint })
    let taken = 0
    for await (const n of client.service(Feed).tail({}, { window: 4 })) {
      expect(n).to.be.a('number')
      if (++taken === 12) break
    }
    // 12 taken: a CREDIT of 2 for every 2 taken, the last ones possibly still on their way.
    await until(() => credits.reduce((a, b) => a + b, 0) >= 10, 1000, 'the credits')
    expect(credits.every((n) => n === 2)).to.equal(true)
  })
})

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const item of items) out.push(item)
  return out
}
