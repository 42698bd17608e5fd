import { expect } from 'chai'
import { Type } from 'typebox'
import { Broker, RpcClient, RpcError, RpcServer, defineService } from '../../lib/index.js'
import { Calc, calcHandlers } from '../helpers/calc.js'
import { rejection, sleep, until } from '../helpers/endpoints.js'

const HEARTBEAT = { heartbeatMs: 100, liveness: 3 }

/** Binds a new broker on `endpoint`, retrying while the old socket's port is still being released. */
async function rebind(endpoint: string): Promise<Broker> {
  for (let attempt = 0; ; attempt++) {
    const broker = new Broker(HEARTBEAT)
    try {
      await broker.bind(endpoint)
      return broker
    } catch (err) {
      await broker.close()
      if (attempt > 50) throw err
      await sleep(50)
    }
  }
}

describe('broker restart', function () {
  this.timeout(20_000)
  it('workers re-register, clients reconnect, and calls after the restart succeed', async () => {
    let broker = new Broker(HEARTBEAT)
    const [endpoint] = (await broker.bind('tcp://127.0.0.1:*')) as [string]
    const server = new RpcServer().implement(Calc, calcHandlers())
    await server.connectBroker(endpoint, { ...HEARTBEAT, concurrency: 2 })
    const client = new RpcClient({ broker: endpoint, timeoutMs: 5000 })
    const calc = client.service(Calc)
    try {
      await until(() => broker.stats().workerList[0]?.credit === 2, 5000, 'worker registered')
      expect(await calc.add({ a: 1, b: 2 })).to.equal(3)

      // Under load: calls in flight when the broker goes end with UNAVAILABLE (or finish first).
      const inFlight = Array.from({ length: 20 }, (_, i) => calc.slow({ ms: 50 + i }).then(() => 'ok', (err: unknown) => err))
      await sleep(20)
      await broker.close()
      for (const outcome of await Promise.all(inFlight)) {
        if (outcome !== 'ok') expect(outcome).to.be.instanceOf(RpcError).with.property('code', 'UNAVAILABLE')
      }

      broker = await rebind(endpoint)
      await until(() => broker.stats().workerList[0]?.credit === 2, 10_000, 'worker re-registered')
      // A new call fails fast while the client is still reconnecting (UNAVAILABLE naming the broker).
      await until(() => client.stats[0]!.connected, 5000, 'the client to reconnect')
      expect(await calc.add({ a: 40, b: 2 })).to.equal(42)
      const many = await Promise.all(Array.from({ length: 50 }, (_, i) => calc.add({ a: i, b: 1 })))
      expect(many).to.deep.equal(Array.from({ length: 50 }, (_, i) => i + 1))
    } finally {
      await client.close()
      await server.close()
      await broker.close()
    }
  })

  it('retries an idempotent call cut off by the restart; the worker that ran it answers from its call record, without a second run', async () => {
    const Store = defineService('store', { get: { params: Type.Object({ key: Type.String() }), result: Type.String(), idempotent: true } })
    let broker = new Broker(HEARTBEAT)
    const [endpoint] = (await broker.bind('tcp://127.0.0.1:*')) as [string]
    let runs = 0
    const server = new RpcServer().implement(Store, { get: async ({ key }) => (runs++, await sleep(300), `value of ${key}`) })
    await server.connectBroker(endpoint, HEARTBEAT)
    const client = new RpcClient({ broker: endpoint, timeoutMs: 10_000 })
    try {
      await until(() => broker.stats().services['store']?.workers === 1, 5000, 'worker registered')
      const call = client.service(Store).get({ key: 'k' })
      await until(() => runs === 1, 2000, 'the first run')
      await broker.close()
      broker = await rebind(endpoint)
      expect(await call).to.equal('value of k')
      // The retry reached the same worker process, whose record gave it the first run's outcome (still running, or finished).
      expect(runs).to.equal(1)
      const record = server.stats.calls.record!
      expect(record.replayed + record.joined).to.equal(1)
    } finally {
      await client.close()
      await server.close({ timeoutMs: 10 })
      await broker.close()
    }
  })

  it('fails calls in flight with UNAVAILABLE when the broker goes, not at their deadline', async () => {
    const broker = new Broker(HEARTBEAT)
    const [endpoint] = (await broker.bind('tcp://127.0.0.1:*')) as [string]
    const server = new RpcServer().implement(Calc, calcHandlers())
    await server.connectBroker(endpoint, HEARTBEAT)
    const client = new RpcClient({ broker: endpoint, timeoutMs: 10_000 })
    try {
      await until(() => broker.stats().services['calc']?.workers === 1, 5000, 'worker registered')
      const call = client.service(Calc).slow({ ms: 5000 })
      await sleep(100)
      await broker.close()
      const err = await rejection(call)
      expect(err).to.be.instanceOf(RpcError).with.property('code', 'UNAVAILABLE')
    } finally {
      await client.close()
      await server.close({ timeoutMs: 10 })
    }
  })
})
