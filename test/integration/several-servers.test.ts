import { expect } from 'chai'
import { RpcClient, RpcServer } from '../../lib/index.js'
import { Calc, calcHandlers } from '../helpers/calc.js'
import { until } from '../helpers/endpoints.js'
import { deadEndpoint } from './client-raw-server.js'

describe('a client with several servers', function () {
  this.timeout(10_000)
  const servers: RpcServer[] = []
  let client: RpcClient | undefined

  afterEach(async () => {
    await client?.close()
    await Promise.all(servers.splice(0).map((s) => s.close()))
  })

  async function startServer(): Promise<{ endpoint: string; served: () => number }> {
    const server = new RpcServer().implement(Calc, calcHandlers())
    servers.push(server)
    const [endpoint] = await server.bind('tcp://127.0.0.1:*')
    return { endpoint: endpoint!, served: () => server.stats.calls.completed }
  }

  it('spreads calls over the servers in turn with round-robin', async () => {
    const a = await startServer()
    const b = await startServer()
    client = new RpcClient({ connect: [a.endpoint, b.endpoint], balancer: 'round-robin' })
    const calc = client.service(Calc)
    await until(() => client!.stats.every((c) => c.connected), 3000, 'both connections')
    for (let i = 0; i < 40; i++) expect(await calc.add({ a: i, b: 1 })).to.equal(i + 1)
    expect([a.served(), b.served()]).to.deep.equal([20, 20])
  })

  it('spreads calls in flight over equal servers by default (power of two choices)', async () => {
    const a = await startServer()
    const b = await startServer()
    client = new RpcClient({ connect: [a.endpoint, b.endpoint] })
    const calc = client.service(Calc)
    await until(() => client!.stats.every((c) => c.connected), 3000, 'both connections')
    // 16 at a time: calls in flight weigh in, so neither equal server is left out. (One call at a
    // time, power of two choices may keep to one server for a while: an answer-time outlier counts
    // against its server until the average decays, which is the policy's intent, not a fault.)
    let next = 0
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < 400) {
        const i = next++
        expect(await calc.add({ a: i, b: 1 })).to.equal(i + 1)
      }
    }))
    expect(a.served() + b.served()).to.equal(400)
    expect(a.served()).to.be.within(40, 360)
  })

  it('sends nothing to a server that is down, so no call waits for its deadline', async () => {
    // The live server first, then a port that was just in use and now refuses: the live server's bind
    // cannot take that port over (it once did, and the "dead" endpoint answered).
    const live = await startServer()
    const dead = await deadEndpoint()
    client = new RpcClient({ connect: [dead, live.endpoint], timeoutMs: 3000 })
    const calc = client.service(Calc)
    await until(() => client!.stats[1]!.connected, 3000, 'the live connection')
    expect(client.stats[0]!.connected).to.equal(false)
    const started = Date.now()
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => calc.add({ a: i, b: 0 })))
    expect(results).to.deep.equal(Array.from({ length: 50 }, (_, i) => i))
    expect(Date.now() - started).to.be.below(2500)
    expect(live.served()).to.equal(50)
  })
})
