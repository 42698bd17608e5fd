import { expect } from 'chai'
import { Type } from 'typebox'
import { Broker, BrokerAdmin, RpcClient, RpcError, RpcServer, defineService } from '../../lib/index.js'
import { Calc, calcHandlers, type CalcProbe } from '../helpers/calc.js'
import { TRANSPORTS, bindAddress, rejection, sleep, until } from '../helpers/endpoints.js'

const HEARTBEAT = { heartbeatMs: 100, liveness: 3 }

/** Waits until the broker has `n` live workers for `service`. */
const workersReady = (broker: Broker, service: string, n: number): Promise<void> =>
  until(() => (broker.stats().services[service]?.workers ?? 0) >= n, 5000, `${n} ${service} workers`)

/** Waits until the workers for `service` may take `n` requests at once (their credits add up to `n`). */
const creditReady = (broker: Broker, service: string, n: number): Promise<void> =>
  until(() => broker.stats().workerList.reduce((sum, w) => sum + (w.service === service ? w.credit : 0), 0) >= n, 5000, `${n} credits for ${service}`)

for (const transport of TRANSPORTS) describe(`typed calls through the broker over ${transport}`, function () {
  this.timeout(15_000)
  let broker: Broker
  let endpoint: string
  let server: RpcServer
  let client: RpcClient
  let probe: CalcProbe

  before(async () => {
    broker = new Broker(HEARTBEAT)
    ;[endpoint] = (await broker.bind(bindAddress(transport))) as [string]
    probe = { aborted: [], started: 0 }
    server = new RpcServer().implement(Calc, calcHandlers(probe))
    await server.connectBroker(endpoint, { ...HEARTBEAT, concurrency: 4 })
    await creditReady(broker, 'calc', 4)
    client = new RpcClient({ broker: endpoint, timeoutMs: 5000 })
  })
  after(async () => {
    await client.close()
    await server.close()
    await broker.close()
  })

  it('returns typed results and passes metadata', async () => {
    const calc = client.service(Calc)
    expect(await calc.add({ a: 1, b: 2 })).to.equal(3)
    expect(await calc.echo({ data: 'héllo ✓' })).to.equal('héllo ✓')
    expect(await calc.meta({}, { metadata: { tenant: 'a' } })).to.deep.equal({ tenant: 'a' })
    // The broker socket's own counters reach stats(), as the server's and client's do.
    const transport = broker.stats().transport!
    expect(transport.received).to.be.above(0)
    expect(transport.send.frames).to.be.above(0)
  })

  it('runs four calls at once on a server with concurrency 4', async () => {
    const started = probe.started
    const calls = Array.from({ length: 4 }, () => client.service(Calc).slow({ ms: 1000 }))
    // One at a time, the fourth could not start before the first ended, 1000 ms in.
    await until(() => probe.started - started === 4, 900, 'four handlers running together')
    await Promise.all(calls)
  })

  it('answers errors as direct calls do', async () => {
    const calc = client.service(Calc)
    const notFound = await rejection(calc.fail({ how: 'rpc' }))
    expect(notFound).to.be.instanceOf(RpcError).with.property('code', 'NOT_FOUND')
    expect((notFound as RpcError).details).to.deep.equal({ what: 'thing' })
    expect(await rejection(calc.fail({ how: 'throw' }))).to.have.property('code', 'INTERNAL')
    expect(await rejection(calc.lie({}))).to.have.property('code', 'INTERNAL')
    const raw = new RpcClient({ broker: endpoint, validateParams: false })
    try {
      const invalid = await rejection(raw.service(Calc).add({ a: 'x' as unknown as number, b: 2 }))
      expect(invalid).to.have.property('code', 'INVALID_ARGUMENT')
      expect((invalid as RpcError).details).to.deep.equal([{ path: '/a', message: 'must be number' }])
      expect(await rejection(raw.call('calc', 'nope', Buffer.from([0xa0])))).to.have.property('code', 'UNIMPLEMENTED')
    } finally {
      await raw.close()
    }
  })

  it('ends a call at its deadline and aborts the handler there', async () => {
    const aborted = probe.aborted.length
    const err = await rejection(client.service(Calc).slow({ ms: 2000 }, { timeoutMs: 200 }))
    expect(err).to.have.property('code', 'DEADLINE_EXCEEDED')
    await until(() => probe.aborted.length > aborted, 1000, 'handler abort')
    expect(await client.service(Calc).add({ a: 2, b: 2 })).to.equal(4)
  })

  it('ends a cancelled call locally', async () => {
    const controller = new AbortController()
    const call = client.service(Calc).slow({ ms: 300 }, { signal: controller.signal })
    await sleep(50)
    controller.abort()
    expect(await rejection(call)).to.have.property('code', 'CANCELLED')
  })
})

describe('load spread over workers', function () {
  this.timeout(15_000)
  it('gives requests to every worker of a service', async () => {
    const broker = new Broker(HEARTBEAT)
    const [endpoint] = (await broker.bind('tcp://127.0.0.1:*')) as [string]
    const Who = defineService('who', { ask: { params: Type.Object({}), result: Type.Integer() } })
    const servers = [0, 1, 2].map((n) => new RpcServer().implement(Who, { ask: async () => (await sleep(20), n) }))
    const client = new RpcClient({ broker: endpoint, timeoutMs: 5000 })
    try {
      for (const s of servers) await s.connectBroker(endpoint, HEARTBEAT)
      await workersReady(broker, 'who', 3)
      const answers = await Promise.all(Array.from({ length: 30 }, () => client.service(Who).ask({})))
      expect(new Set(answers)).to.deep.equal(new Set([0, 1, 2]))
    } finally {
      await client.close()
      await Promise.all(servers.map((s) => s.close()))
      await broker.close()
    }
  })
})

describe('a service implemented after connectBroker', function () {
  this.timeout(15_000)
  it('registers with the broker too, and answers through it', async () => {
    const broker = new Broker(HEARTBEAT)
    const [endpoint] = (await broker.bind('tcp://127.0.0.1:*')) as [string]
    const Late = defineService('late', { hello: { params: Type.Object({ name: Type.String() }), result: Type.String() } })
    const server = new RpcServer().implement(Calc, calcHandlers())
    const client = new RpcClient({ broker: endpoint, timeoutMs: 5000 })
    try {
      await server.connectBroker(endpoint, { ...HEARTBEAT, concurrency: 2 })
      server.implement(Late, { hello: ({ name }) => `hello ${name}` })
      await creditReady(broker, 'late', 2)
      expect(await client.service(Late).hello({ name: 'later' })).to.equal('hello later')
      expect(await client.service(Calc).add({ a: 1, b: 1 })).to.equal(2)
    } finally {
      await client.close()
      await server.close()
      await broker.close()
    }
  })
})

describe('the broker management service', function () {
  this.timeout(15_000)
  it('counts per service: errors by code, expiries in the queue, and the age of the oldest waiting request', async () => {
    const broker = new Broker(HEARTBEAT)
    const [endpoint] = (await broker.bind('tcp://127.0.0.1:*')) as [string]
    const server = new RpcServer().implement(Calc, calcHandlers())
    const client = new RpcClient({ broker: endpoint, timeoutMs: 5000 })
    try {
      await server.connectBroker(endpoint, { ...HEARTBEAT, concurrency: 1 })
      await workersReady(broker, 'calc', 1)
      const calc = client.service(Calc)
      expect(await rejection(calc.fail({ how: 'rpc' }))).to.have.property('code', 'NOT_FOUND')
      expect(await rejection(calc.fail({ how: 'rpc' }))).to.have.property('code', 'NOT_FOUND')
      // The one credit busy: the next call waits in the queue and runs out of time there.
      const busy = calc.slow({ ms: 400 })
      await until(() => broker.stats().services['calc']?.inFlight === 1, 2000, 'the worker busy')
      const waiting = rejection(calc.add({ a: 1, b: 1 }, { timeoutMs: 150 }))
      await sleep(60)
      expect(broker.stats().services['calc']?.oldestQueuedMs).to.be.at.least(40)
      expect(await waiting).to.have.property('code', 'DEADLINE_EXCEEDED')
      await busy
      await until(() => broker.stats().services['calc']?.expired === 1, 2000, 'the expiry counted')
      const overview = await client.service(BrokerAdmin).services({})
      expect(overview.services.find((s) => s.name === 'calc')?.errors).to.deep.include({ NOT_FOUND: 2 })
    } finally {
      await client.close()
      await server.close()
      await broker.close()
    }
  })

  it('lists services and workers and disconnects a worker, through the broker itself', async () => {
    const broker = new Broker(HEARTBEAT)
    const [endpoint] = (await broker.bind('tcp://127.0.0.1:*')) as [string]
    const server = new RpcServer().implement(Calc, calcHandlers())
    const client = new RpcClient({ broker: endpoint, timeoutMs: 5000 })
    try {
      await server.connectBroker(endpoint, { ...HEARTBEAT, concurrency: 2 })
      await workersReady(broker, 'calc', 1)
      const admin = client.service(BrokerAdmin)
      await client.service(Calc).add({ a: 1, b: 1 })
      const before = await admin.services({})
      const calc = before.services.find((s) => s.name === 'calc')
      expect(calc).to.include({ workers: 1, idle: 1, inFlight: 0, requests: 1, replies: 1, queued: 0, oldestQueuedMs: 0, expired: 0 })
      expect(calc?.errors).to.deep.equal({})
      // One worker socket per service, taking `concurrency` requests at once.
      const calcWorkers = before.workers.filter((w) => w.service === 'calc')
      expect(calcWorkers).to.have.length(1)
      expect(calcWorkers[0]).to.include({ credit: 2, holding: 0 })
      expect(await admin.disconnectWorker({ identity: calcWorkers[0]!.identity })).to.equal(true)
      expect(await admin.disconnectWorker({ identity: 'nobody' })).to.equal(false)
      // The worker reconnects as a new worker; the old identity is gone for good.
      await until(() => !broker.stats().workerList.some((w) => w.identity === calcWorkers[0]!.identity), 5000, 'worker gone')
      const after = await admin.services({})
      expect(after.workers.map((w) => w.identity)).to.not.include(calcWorkers[0]!.identity)
    } finally {
      await client.close()
      await server.close()
      await broker.close()
    }
  })
})
