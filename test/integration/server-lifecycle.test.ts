import { expect } from 'chai'
import { Type } from 'typebox'
import { Broker, RpcClient, RpcError, RpcServer, defineService } from '../../lib/index.js'
import { BrokerWorker } from '../../lib/rpc/broker-worker.js'
import { Calc, calcHandlers, type CalcProbe } from '../helpers/calc.js'
import { TRANSPORTS, bindAddress, rejection, until } from '../helpers/endpoints.js'

/** A service whose handler never ends and never looks at its signal. */
const Stubborn = defineService('stubborn', {
  hang: { params: Type.Object({}), result: Type.Null() },
  ping: { params: Type.Object({}), result: Type.String() },
})
const stubborn = (started: { n: number }) => ({
  hang: () => {
    started.n++
    return new Promise<null>(() => undefined)
  },
  ping: () => 'pong',
})

describe('server: implement()', function () {
  this.timeout(5000)

  it('registers nothing when a handler is missing (all or nothing), so the service can be implemented again whole', async () => {
    const server = new RpcServer()
    expect(() => server.implement(Stubborn, { ping: () => 'pong' } as never)).to.throw(TypeError, /no handler for stubborn.hang/)
    const [endpoint] = await server.bind('tcp://127.0.0.1:*')
    const client = new RpcClient({ connect: endpoint!, timeoutMs: 2000 })
    try {
      expect(await rejection(client.service(Stubborn).ping({}))).to.have.property('code', 'UNIMPLEMENTED')
      server.implement(Stubborn, stubborn({ n: 0 }))
      expect(await client.service(Stubborn).ping({})).to.equal('pong')
    } finally {
      await client.close()
      await server.close()
    }
  })

  it('throws FAILED_PRECONDITION after close()', async () => {
    const server = new RpcServer()
    await server.close()
    expect(() => server.implement(Calc, calcHandlers())).to.throw(RpcError).with.property('code', 'FAILED_PRECONDITION')
  })

  it('refuses a maxMessageSize under 64 KiB, the protocol cap on joined frames, with a TypeError', () => {
    expect(() => new RpcServer({ maxMessageSize: 1024 })).to.throw(TypeError, /at least 65536 bytes/)
    expect(() => new RpcServer({ maxMessageSize: 64 * 1024 })).not.to.throw()
  })
})

describe('server: bind()', function () {
  this.timeout(5000)

  it('binds every endpoint of concurrent bind() calls on one listener', async () => {
    const server = new RpcServer().implement(Calc, calcHandlers())
    try {
      const [a, b, c] = await Promise.all([server.bind('tcp://127.0.0.1:*'), server.bind(bindAddress('ipc')), server.bind([bindAddress('inproc')])])
      expect(server.stats.input).to.have.length(1)
      for (const endpoint of [a![0]!, b![0]!, c![0]!]) {
        const client = new RpcClient({ connect: endpoint, timeoutMs: 2000 })
        expect(await client.service(Calc).add({ a: 1, b: 2 })).to.equal(3)
        await client.close()
      }
    } finally {
      await server.close()
    }
  })
})

describe('server: close()', function () {
  this.timeout(10_000)

  for (const transport of TRANSPORTS) {
    it(`never waits past its timeout for a handler that ignores its signal, over ${transport}; refusals say notStarted`, async () => {
      const started = { n: 0 }
      const server = new RpcServer().implement(Stubborn, stubborn(started))
      const [endpoint] = await server.bind(bindAddress(transport))
      const client = new RpcClient({ connect: endpoint!, timeoutMs: 5000 })
      try {
        const hanging = rejection(client.service(Stubborn).hang({}))
        await until(() => started.n === 1, 2000, 'the handler to start')
        const began = Date.now()
        const closing = server.close({ timeoutMs: 300 })
        const refused = (await rejection(client.service(Stubborn).ping({}))) as RpcError
        await closing
        expect(Date.now() - began).to.be.below(600)
        expect(refused).to.have.property('code', 'UNAVAILABLE')
        expect(refused.details).to.deep.include({ notStarted: true })
        expect(await hanging).to.have.property('code', 'UNAVAILABLE')
      } finally {
        await client.close()
        await server.close()
      }
    })
  }

  for (const transport of TRANSPORTS) {
    it(`behind a broker over ${transport}: asks workers to stop taking work before draining, and still ends within its timeout`, async () => {
      const broker = new Broker({ heartbeatMs: 100, liveness: 3 })
      const [endpoint] = await broker.bind(bindAddress(transport))
      const probe: CalcProbe = { aborted: [], started: 0 }
      const server = new RpcServer().implement(Calc, calcHandlers(probe))
      // A wrapper records when stopTaking() runs (close() calls it again later; only the first counts).
      const proto = BrokerWorker.prototype as unknown as { stopTaking?: () => Promise<void> }
      const had = Object.prototype.hasOwnProperty.call(proto, 'stopTaking') ? proto.stopTaking : undefined
      const order: string[] = []
      const original = had
      proto.stopTaking = async function (this: BrokerWorker) {
        order.push(`stop while ${probe.aborted.length} aborted`)
        if (original !== undefined) await original.call(this)
      }
      const client = new RpcClient({ broker: endpoint!, timeoutMs: 5000 })
      try {
        await server.connectBroker(endpoint!, { heartbeatMs: 100, liveness: 3 })
        await until(() => (broker.stats().services['calc']?.workers ?? 0) >= 1, 5000, 'the worker')
        const running = rejection(client.service(Calc).slow({ ms: 5000 }))
        await until(() => probe.started === 1, 2000, 'the handler to start')
        const began = Date.now()
        await server.close({ timeoutMs: 300 })
        expect(Date.now() - began).to.be.below(1000)
        expect(order[0]).to.equal('stop while 0 aborted')
        expect(await running).to.be.instanceOf(RpcError)
      } finally {
        if (had === undefined) delete proto.stopTaking
        else proto.stopTaking = had
        await client.close()
        await server.close()
        await broker.close()
      }
    })
  }
})
