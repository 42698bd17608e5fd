/**
 * Heartbeats between a client and the servers it is connected to directly (docs/protocol.md,
 * Heartbeats): a server that stops answering is marked down within the timeout though TCP stays up,
 * its calls end at once, idempotent ones go elsewhere, and it is used again once it answers.
 */
import { expect } from 'chai'
import { Type } from 'typebox'
import { Router } from 'zeromq'
import { RpcClient, RpcError, RpcServer, defineService } from '../../lib/index.js'
import { Kind, encodePong, parseFrame } from '../../lib/codec/envelope.js'
import { rejection, sleep, until } from '../helpers/endpoints.js'

const Store = defineService('store', {
  get: { params: Type.Object({ key: Type.String() }), result: Type.String(), idempotent: true },
  put: { params: Type.Object({ key: Type.String() }), result: Type.String() },
  slow: { params: Type.Object({ ms: Type.Number() }), result: Type.Null() },
})
const HEARTBEAT = { intervalMs: 100, timeoutMs: 300 }

/** A server that takes every message and answers nothing, until told to answer PINGs. */
class BlackHole {
  readonly socket = new Router({ linger: 0 })
  readonly kinds: number[] = []
  answerPings = false
  endpoint = ''
  private loop: Promise<void> | undefined

  async start(): Promise<this> {
    await this.socket.bind('tcp://127.0.0.1:*')
    this.endpoint = this.socket.lastEndpoint!
    this.loop = (async () => {
      for await (const [peer, frame] of this.socket) {
        for (const env of parseFrame(frame!)) {
          this.kinds.push(env.kind as number)
          if (env.kind === Kind.Ping && this.answerPings) await this.socket.send([peer!, encodePong(env.id)])
        }
      }
    })().catch(() => undefined)
    return this
  }

  async close(): Promise<void> {
    this.socket.close()
    await this.loop
  }
}

describe('heartbeats to directly connected servers', function () {
  this.timeout(15_000)
  const closers: Array<() => Promise<void> | void> = []
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close()
  })

  async function hole(): Promise<BlackHole> {
    const h = await new BlackHole().start()
    closers.push(() => h.close())
    return h
  }

  it('marks a silent server down within the timeout, though TCP is up: its call ends at once, and it is used again once it answers', async () => {
    const h = await hole()
    const client = new RpcClient({ connect: h.endpoint, timeoutMs: 10_000, heartbeat: HEARTBEAT })
    closers.push(() => client.close())
    const started = Date.now()
    // Not idempotent, so not retried: it ends with the server's silence (an idempotent one would wait for it to return).
    const err = await rejection(client.service(Store).put({ key: 'a' }))
    expect(err).to.be.instanceOf(RpcError).with.property('code', 'UNAVAILABLE')
    expect((err as RpcError).details).to.deep.include({ connectionLost: true, endpoint: h.endpoint })
    expect((err as RpcError).message).to.include('heartbeat')
    // Far from the call's 10 s deadline: the timeout (300 ms) plus at most half an interval.
    expect(Date.now() - started).to.be.below(5000)
    expect(h.kinds).to.include(Kind.Ping)
    const [stats] = client.stats
    expect(stats).to.include({ state: 'failing', connected: false, markedDown: 1 })
    expect(stats!.stateDetail).to.include('heartbeat')
    // While down, a new call is not sent there: it fails at once, saying so.
    const refused = await rejection(client.service(Store).put({ key: 'b' }))
    expect((refused as RpcError).details).to.deep.include({ notStarted: true })
    // It answers again: the client's next PING finds it, and it is ready once more.
    h.answerPings = true
    await until(() => client.stats[0]!.state === 'ready', 5000, 'the endpoint back up')
  })

  it('retries an idempotent call cut off by a silent server on another one, well before its deadline', async () => {
    const h = await hole()
    const good = new RpcServer().implement(Store, { get: ({ key }) => `value of ${key}`, put: ({ key }) => key, slow: async () => null })
    closers.push(() => good.close())
    const [goodEndpoint] = await good.bind('tcp://127.0.0.1:*')
    // Round robin sends the first call to the silent server.
    const client = new RpcClient({ connect: [h.endpoint, goodEndpoint!], balancer: 'round-robin', timeoutMs: 10_000, heartbeat: HEARTBEAT })
    closers.push(() => client.close())
    await until(() => client.stats.every((s) => s.connected), 3000, 'both connected')
    const started = Date.now()
    expect(await client.service(Store).get({ key: 'k' })).to.equal('value of k')
    expect(Date.now() - started).to.be.below(5000)
    expect(h.kinds.filter((k) => k === Kind.Request)).to.have.length(1)
    expect(client.stats[0]).to.include({ markedDown: 1 })
    // Later calls go to the live server only.
    expect(await Promise.all(Array.from({ length: 5 }, (_, i) => client.service(Store).get({ key: `${i}` })))).to.have.length(5)
    expect(h.kinds.filter((k) => k === Kind.Request)).to.have.length(1)
  })

  it('keeps a busy server that answers PINGs: a 1 s call with a 300 ms heartbeat timeout succeeds', async () => {
    const server = new RpcServer().implement(Store, { get: ({ key }) => key, put: ({ key }) => key, slow: async ({ ms }) => (await sleep(ms), null) })
    closers.push(() => server.close())
    const [endpoint] = await server.bind('tcp://127.0.0.1:*')
    const client = new RpcClient({ connect: endpoint!, timeoutMs: 10_000, heartbeat: HEARTBEAT })
    closers.push(() => client.close())
    expect(await client.service(Store).slow({ ms: 1000 })).to.equal(null)
    expect(client.stats[0]).to.include({ markedDown: 0, state: 'ready' })
  })

  it('sends no PING with heartbeat: false, and checks its settings', async () => {
    const h = await hole()
    const client = new RpcClient({ connect: h.endpoint, timeoutMs: 800, heartbeat: false })
    closers.push(() => client.close())
    expect(await rejection(client.service(Store).put({ key: 'a' }))).to.have.property('code', 'DEADLINE_EXCEEDED')
    expect(h.kinds).to.not.include(Kind.Ping)
    expect(() => new RpcClient({ connect: h.endpoint, heartbeat: { intervalMs: 100, timeoutMs: 50 } })).to.throw(TypeError, /timeoutMs > intervalMs/)
  })
})
