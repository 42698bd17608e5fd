/**
 * Many servers, no broker: calls go where the load is lowest, endpoints come and go at run time.
 */
import { expect } from 'chai'
import { Type } from 'typebox'
import { RpcClient, RpcError, RpcServer, defineService, type EndpointLoad, type LoadBalancer, type RpcClientSettings } from '../../lib/index.js'
import { checkEndpoint } from '../../lib/transport/endpoint.js'
import { deadEndpoint } from './client-raw-server.js'
import { rejection, sleep, until } from '../helpers/endpoints.js'

const Work = defineService('work', { run: { params: Type.Object({}), result: Type.String() } })

describe('a client balancing over several servers', function () {
  this.timeout(20_000)
  const servers: RpcServer[] = []
  const clients: RpcClient[] = []

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()))
    await Promise.all(servers.splice(0).map((s) => s.close({ timeoutMs: 500 })))
  })

  /** A server answering with its name after `delayMs`; `served` counts its calls. */
  async function server(name: string, delayMs: number): Promise<{ endpoint: string; served: () => number }> {
    let served = 0
    const s = new RpcServer().implement(Work, {
      run: async () => {
        served++
        if (delayMs > 0) await sleep(delayMs)
        return name
      },
    })
    servers.push(s)
    const [endpoint] = await s.bind('tcp://127.0.0.1:*')
    return { endpoint: endpoint!, served: () => served }
  }

  function client(connect: string[], balancer?: RpcClientSettings['balancer']): RpcClient {
    const c = new RpcClient({ connect, timeoutMs: 10_000, ...(balancer !== undefined && { balancer }) })
    clients.push(c)
    return c
  }

  /** `total` calls, `window` at a time; resolves with how many each server name answered. */
  async function load(c: RpcClient, total: number, window: number): Promise<Record<string, number>> {
    const work = c.service(Work)
    const answers: Record<string, number> = {}
    let issued = 0
    await Promise.all(
      Array.from({ length: window }, async () => {
        while (issued < total) {
          issued++
          const name = await work.run({})
          answers[name] = (answers[name] ?? 0) + 1
        }
      }),
    )
    return answers
  }

  for (const [policy, most] of [
    ['power-of-two', 0.15],
    ['least-outstanding', 0.3],
  ] as const) {
    it(`${policy}: a slow server gets a much smaller share, and the fast one is not starved`, async () => {
      const fast = await server('fast', 0)
      const slow = await server('slow', 20)
      const c = client([fast.endpoint, slow.endpoint], policy)
      await until(() => c.stats.every((s) => s.connected), 3000, 'both connected')
      const answers = await load(c, 600, 16)
      expect((answers['fast'] ?? 0) + (answers['slow'] ?? 0)).to.equal(600)
      // Round robin would give the slow server half (see below); here it gets at most `most` of the calls.
      expect(answers['slow'] ?? 0).to.be.below(600 * most)
      expect(answers['fast']).to.be.above(600 * (1 - most))
      // Its answer time is what the client learned: the slow one's average is well above the fast one's.
      const [fastStats, slowStats] = c.stats
      expect(slowStats!.latencyMs).to.be.above(10)
      expect(fastStats!.latencyMs).to.be.below(slowStats!.latencyMs)
    })
  }

  it('round-robin gives a slow server its full share (what load-aware balancing avoids)', async () => {
    const fast = await server('fast', 0)
    const slow = await server('slow', 20)
    const c = client([fast.endpoint, slow.endpoint], 'round-robin')
    await until(() => c.stats.every((s) => s.connected), 3000, 'both connected')
    const answers = await load(c, 100, 16)
    expect(answers).to.deep.equal({ fast: 50, slow: 50 })
  })

  it('takes a LoadBalancer of the user\'s: here, always the last endpoint offered', async () => {
    const a = await server('a', 0)
    const b = await server('b', 0)
    const offered: string[][] = []
    const last: LoadBalancer = {
      pick<E extends EndpointLoad>(candidates: readonly E[]): E {
        offered.push(candidates.map((e) => e.endpoint))
        return candidates[candidates.length - 1]!
      },
    }
    const c = client([a.endpoint, b.endpoint], last)
    await until(() => c.stats.every((s) => s.connected), 3000, 'both connected')
    expect(await load(c, 20, 4)).to.deep.equal({ b: 20 })
    expect(offered.length).to.equal(20)
    expect(offered.every((list) => list.length === 2)).to.equal(true)
  })

  it('says on each error which endpoint it came from or is about', async () => {
    const failing = new RpcServer().implement(Work, {
      run: () => {
        throw new RpcError('NOT_FOUND', 'nothing here')
      },
    })
    servers.push(failing)
    const [endpoint] = await failing.bind('tcp://127.0.0.1:*')
    const dead = await deadEndpoint()
    const c = client([endpoint!, dead], 'round-robin')
    await until(() => c.stats[0]!.connected && c.stats[1]!.state === 'failing', 3000, 'one up, one refused')
    const fromServer = await rejection(c.service(Work).run({}))
    expect(fromServer).to.be.instanceOf(RpcError).with.property('code', 'NOT_FOUND')
    expect((fromServer as RpcError).endpoint).to.equal(endpoint)
    // Only the refused endpoint left: the error that it cannot be reached names it.
    await c.removeEndpoint(endpoint!)
    const unreachable = await rejection(c.service(Work).run({}))
    expect(unreachable).to.have.property('code', 'UNAVAILABLE')
    expect((unreachable as RpcError).endpoint).to.equal(dead)
  })

  it('refuses an unknown balancer name', () => {
    expect(() => new RpcClient({ connect: 'tcp://127.0.0.1:1', balancer: 'fastest' as 'round-robin' })).to.throw(TypeError, /unknown balancer "fastest"/)
  })

  it('adds an endpoint at run time, and removing one lets its calls finish and sends the next ones elsewhere', async () => {
    const a = await server('a', 50)
    const b = await server('b', 0)
    const c = client([a.endpoint])
    const work = c.service(Work)
    expect(await work.run({})).to.equal('a')
    c.addEndpoint(b.endpoint)
    expect(c.endpoints).to.deep.equal([a.endpoint, b.endpoint])
    await until(() => c.stats.every((s) => s.connected), 3000, 'b connected')
    // Calls in flight on a when it is removed still get a's answers.
    const inFlight = Array.from({ length: 4 }, () => work.run({}))
    await until(() => c.stats[0]!.inFlight > 0, 2000, 'calls on a')
    const onA = c.stats[0]!.inFlight
    const removed = c.removeEndpoint(a.endpoint)
    expect(c.endpoints).to.deep.equal([b.endpoint])
    const answers = await Promise.all(inFlight)
    expect(answers.filter((n) => n === 'a')).to.have.length(onA)
    await removed
    expect(await Promise.all(Array.from({ length: 10 }, () => work.run({})))).to.deep.equal(Array(10).fill('b'))
    expect(a.served()).to.equal(1 + onA)
  })

  it('retries elsewhere the calls still waiting for a removed endpoint', async () => {
    const b = await server('b', 0)
    const dead = await deadEndpoint()
    const c = new RpcClient({ connect: [dead], timeoutMs: 5000, waitForReady: true })
    clients.push(c)
    const work = c.service(Work)
    // Nothing listens at `dead`: these wait for it (waitForReady), unsent.
    const waiting = Array.from({ length: 3 }, () => work.run({}))
    await sleep(50)
    c.addEndpoint(b.endpoint)
    await c.removeEndpoint(dead)
    expect(await Promise.all(waiting)).to.deep.equal(['b', 'b', 'b'])
  })

  it('checks what it is given: bad, duplicate and unknown endpoints, the last one, a broker client', async () => {
    const a = await server('a', 0)
    const c = client([a.endpoint])
    expect(() => c.addEndpoint('tcp://nowhere')).to.throw(Error)
    expect(() => checkEndpoint('tcp://nowhere', 'connect')).to.throw(Error)
    expect(() => c.addEndpoint(a.endpoint)).to.throw(TypeError, /already connected/)
    expect(await rejection(c.removeEndpoint('tcp://127.0.0.1:9'))).to.be.instanceOf(TypeError)
    expect(await rejection(c.removeEndpoint(a.endpoint))).to.be.instanceOf(TypeError).with.property('message').that.matches(/last endpoint/)
    const viaBroker = new RpcClient({ broker: 'tcp://127.0.0.1:9', timeoutMs: 100 })
    clients.push(viaBroker)
    expect(() => viaBroker.addEndpoint(a.endpoint)).to.throw(TypeError, /broker/)
    await c.close()
    expect(() => c.addEndpoint('tcp://127.0.0.1:9')).to.throw(RpcError)
  })
})
