import { expect } from 'chai'
import { Type } from 'typebox'
import { Dealer } from 'zeromq'
import { Broker, RpcClient, RpcError, RpcServer, defineService, type BrokerOptions } from '../../lib/index.js'
import { decodeCbor, encodeCbor } from '../../lib/codec/cbor.js'
import { Kind, encodeRequest, parseFrame, type ReplyEnvelope } from '../../lib/codec/envelope.js'
import { MajordomoWorker } from '../../patterns/majordomo-worker.js'
import { Calc, calcHandlers, type CalcProbe } from '../helpers/calc.js'
import { rejection, until } from '../helpers/endpoints.js'

const HEARTBEAT = { heartbeatMs: 100, liveness: 3 }

const workersReady = (broker: Broker, service: string, n: number): Promise<void> =>
  until(() => (broker.stats().services[service]?.workers ?? 0) >= n, 5000, `${n} ${service} workers`)

/** Everything one test made, closed in reverse. */
class Rig {
  readonly closers: Array<() => Promise<void>> = []
  broker!: Broker
  endpoint!: string

  async start(options: BrokerOptions = {}): Promise<this> {
    this.broker = new Broker({ ...HEARTBEAT, ...options })
    ;[this.endpoint] = (await this.broker.bind('tcp://127.0.0.1:*')) as [string]
    this.closers.push(() => this.broker.close())
    return this
  }

  async calcServer(probe: CalcProbe, concurrency = 1): Promise<RpcServer> {
    const server = new RpcServer().implement(Calc, calcHandlers(probe))
    await server.connectBroker(this.endpoint, { ...HEARTBEAT, concurrency })
    this.closers.push(() => server.close({ timeoutMs: 100 }))
    return server
  }

  client(timeoutMs = 5000): RpcClient {
    const client = new RpcClient({ broker: this.endpoint, timeoutMs })
    this.closers.push(() => client.close())
    return client
  }

  async close(): Promise<void> {
    for (const close of this.closers.reverse()) await close()
  }
}

describe('broker failures', function () {
  this.timeout(15_000)
  let rig: Rig
  beforeEach(async () => (rig = await new Rig().start()))
  afterEach(() => rig.close())

  it('frees the queue slots of requests whose deadline passed, before any worker is free', async () => {
    await rig.close()
    rig = await new Rig().start({ maxQueuePerService: 2 })
    const probe: CalcProbe = { aborted: [], started: 0 }
    await rig.calcServer(probe)
    await workersReady(rig.broker, 'calc', 1)
    const calc = rig.client().service(Calc)
    const busy = calc.slow({ ms: 1500 })
    await until(() => probe.started === 1, 2000, 'first call running')
    const stale = [calc.add({ a: 1, b: 1 }, { timeoutMs: 100 }), calc.add({ a: 2, b: 2 }, { timeoutMs: 100 })]
    for (const call of stale) expect(await rejection(call)).to.have.property('code', 'DEADLINE_EXCEEDED')
    await until(() => rig.broker.stats().services['calc']?.queued === 0, 1000, 'the stale requests to leave the queue')
    // The queue has room again while the worker is still busy: this call waits instead of RESOURCE_EXHAUSTED.
    const next = calc.add({ a: 20, b: 22 })
    expect(await busy).to.equal(null)
    expect(await next).to.equal(42)
    expect(rig.broker.stats().expired).to.equal(2)
  })

  it('drops a request whose deadline passed while queued: the worker never runs it', async () => {
    const probe: CalcProbe = { aborted: [], started: 0 }
    await rig.calcServer(probe)
    await workersReady(rig.broker, 'calc', 1)
    const calc = rig.client().service(Calc)
    const busy = calc.slow({ ms: 400 })
    await until(() => probe.started === 1, 2000, 'first call running')
    const err = await rejection(calc.slow({ ms: 1 }, { timeoutMs: 100 }))
    expect(err).to.be.instanceOf(RpcError).with.property('code', 'DEADLINE_EXCEEDED')
    await busy
    await until(() => rig.broker.stats().expired === 1, 2000, 'broker drops the expired request')
    expect(probe.started).to.equal(1)
    expect(await calc.add({ a: 1, b: 1 })).to.equal(2)
  })

  it('answers UNAVAILABLE quickly when no worker comes within requestExpiryMs', async () => {
    await rig.close()
    rig = await new Rig().start({ requestExpiryMs: 100 })
    const began = Date.now()
    const err = await rejection(rig.client(10_000).service(Calc).add({ a: 1, b: 2 }))
    expect(err).to.be.instanceOf(RpcError).with.property('code', 'UNAVAILABLE')
    expect(Date.now() - began).to.be.below(5000)
  })

  it('answers RESOURCE_EXHAUSTED when the service queue is full', async () => {
    await rig.close()
    rig = await new Rig().start({ maxQueuePerService: 1 })
    const probe: CalcProbe = { aborted: [], started: 0 }
    await rig.calcServer(probe)
    await workersReady(rig.broker, 'calc', 1)
    const calc = rig.client().service(Calc)
    const running = calc.slow({ ms: 300 })
    await until(() => probe.started === 1, 2000, 'first call running')
    const queued = calc.slow({ ms: 1 })
    await until(() => rig.broker.stats().services['calc']?.queued === 1, 2000, 'second call queued')
    expect(await rejection(calc.add({ a: 1, b: 2 }))).to.be.instanceOf(RpcError).with.property('code', 'RESOURCE_EXHAUSTED')
    await Promise.all([running, queued])
  })

  it('answers UNAVAILABLE { workerLost } within the liveness window when a worker dies mid-request', async () => {
    const dying = new MajordomoWorker(rig.endpoint, 'calc', { ...HEARTBEAT, sendDisconnectOnClose: false })
    await workersReady(rig.broker, 'calc', 1)
    const began = Date.now()
    const call = rig.client(10_000).service(Calc).add({ a: 1, b: 2 })
    const request = await dying.receive()
    expect(request).to.not.equal(null)
    await dying.close()
    const err = await rejection(call)
    expect(err).to.be.instanceOf(RpcError).with.property('code', 'UNAVAILABLE')
    expect((err as RpcError).details).to.deep.equal({ workerLost: true })
    expect(Date.now() - began).to.be.below(5000)
  })

  it('retries an idempotent method on another worker, never a non-idempotent one', async () => {
    const Store = defineService('store', {
      get: { params: Type.Object({}), result: Type.String(), idempotent: true },
      put: { params: Type.Object({}), result: Type.String() },
    })
    const runs = { get: 0, put: 0 }
    const client = rig.client(10_000).service(Store)
    for (const method of ['get', 'put'] as const) {
      // The worker that joined first gets the next request (LRU): the dying one.
      const dying = new MajordomoWorker(rig.endpoint, 'store', { ...HEARTBEAT, sendDisconnectOnClose: false })
      await workersReady(rig.broker, 'store', 1)
      const server = new RpcServer().implement(Store, { get: () => (runs.get++, 'got'), put: () => (runs.put++, 'put') })
      await server.connectBroker(rig.endpoint, HEARTBEAT)
      await workersReady(rig.broker, 'store', 2)
      const call = client[method]({})
      expect(await dying.receive()).to.not.equal(null)
      await dying.close()
      if (method === 'get') expect(await call).to.equal('got')
      else expect(await rejection(call)).to.have.property('details').that.deep.equals({ workerLost: true })
      await server.close()
      await until(() => rig.broker.stats().services['store'] === undefined, 5000, 'store workers gone')
    }
    expect(runs).to.deep.equal({ get: 1, put: 0 })
  })

  it('keeps serving after thousands of malformed messages', async () => {
    const probe: CalcProbe = { aborted: [], started: 0 }
    await rig.calcServer(probe)
    await workersReady(rig.broker, 'calc', 1)
    const attacker = new Dealer({ linger: 0 })
    attacker.connect(rig.endpoint)
    const junk: Buffer[][] = [
      [Buffer.from('hello')],
      [Buffer.alloc(0), Buffer.from('MDPC01')],
      [Buffer.alloc(0), Buffer.from('MDPC01'), Buffer.from('calc'), Buffer.from([0xff, 0x00])],
      [Buffer.alloc(0), Buffer.from('MDPC01'), Buffer.from('calc'), encodeCbor([1, 0, 7, 'other', 'add', 1000, null, encodeCbor({})])],
      [Buffer.alloc(0), Buffer.from('MDPC01'), Buffer.from('calc'), Buffer.from('a'), Buffer.from('b')],
      [Buffer.alloc(0), Buffer.from('MDPW01'), Buffer.from([0x09])],
      [Buffer.alloc(0), Buffer.from('MDPW01'), Buffer.from([0x03]), Buffer.from('nobody'), Buffer.alloc(0), Buffer.from('x')],
    ]
    for (let i = 0; i < 3000; i++) await attacker.send(junk[i % junk.length]!)
    const calc = rig.client().service(Calc)
    expect(await calc.add({ a: 20, b: 22 })).to.equal(42)
    // The broker reads peers fairly: the honest call may be answered before the junk is all read.
    const total = (counts: Record<string, number>): number => Object.values(counts).reduce((a, b) => a + b, 0)
    // Bodies that are not zrpc ([0xff, 0x00], and two text frames) are plain MDP requests: they wait for a plain worker.
    const queued = (): number => rig.broker.stats().services['calc']?.queued ?? 0
    await until(() => total(rig.broker.stats().dropped) + total(rig.broker.stats().rejected) + queued() >= 3000, 5000, 'all junk read')
    const { dropped, rejected } = rig.broker.stats()
    expect(total(dropped)).to.be.above(1200)
    // A REQUEST for another service has a readable id: it is refused (INVALID_ARGUMENT) on arrival, never queued.
    expect(rejected['invalid']).to.be.above(400)
    // The plain requests wait for a plain worker; the zrpc call above was served past them.
    expect(queued()).to.be.above(800)
    expect(probe.started).to.equal(0)
    attacker.close()
  })

  it('drops a peer that sends an oversized message and keeps serving the others', async () => {
    await rig.close()
    rig = await new Rig().start({ maxMessageSize: 64 * 1024 })
    await rig.calcServer({ aborted: [], started: 0 })
    await workersReady(rig.broker, 'calc', 1)
    const calc = rig.client().service(Calc)
    const big = calc.echo({ data: 'x'.repeat(200 * 1024) }, { timeoutMs: 1000 })
    expect(await rejection(big)).to.be.instanceOf(RpcError).with.property('code', 'UNAVAILABLE')
    const other = rig.client().service(Calc)
    expect(await other.add({ a: 1, b: 2 })).to.equal(3)
  })

  it('carries a raw REQUEST envelope sent by hand', async () => {
    await rig.calcServer({ aborted: [], started: 0 })
    await workersReady(rig.broker, 'calc', 1)
    const dealer = new Dealer({ linger: 0 })
    dealer.connect(rig.endpoint)
    await dealer.send([Buffer.alloc(0), Buffer.from('MDPC01'), Buffer.from('calc'), encodeRequest(9, 'calc', 'add', 2000, null, encodeCbor({ a: 1, b: 1 }))])
    const [, header, service, frame] = await dealer.receive()
    expect(String(header)).to.equal('MDPC01')
    expect(String(service)).to.equal('calc')
    const [reply] = parseFrame(frame!)
    expect(reply).to.include({ kind: Kind.Reply, id: 9 })
    expect(decodeCbor((reply as ReplyEnvelope).result)).to.equal(2)
    dealer.close()
  })
})
