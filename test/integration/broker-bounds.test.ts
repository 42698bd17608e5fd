import { expect } from 'chai'
import { Dealer } from 'zeromq'
import { Broker, RpcClient, RpcServer, type BrokerOptions } from '../../lib/index.js'
import { encodeCbor } from '../../lib/codec/cbor.js'
import { Kind, encodeRequest, parseFrame, type ErrorEnvelope } from '../../lib/codec/envelope.js'
import { BrokerWorker } from '../../lib/rpc/broker-worker.js'
import { Dispatcher } from '../../lib/rpc/dispatcher.js'
import { Calc, calcHandlers } from '../helpers/calc.js'
import { TRANSPORTS, bindAddress, sleep, until } from '../helpers/endpoints.js'

const HEARTBEAT = { heartbeatMs: 100, liveness: 3 }
const EMPTY = Buffer.alloc(0)

/** A plain MDP client on its own DEALER, so tests choose every byte (budgets, bodies, names). */
class RawClient {
  private readonly dealer = new Dealer({ linger: 0, receiveTimeout: 5000 })
  constructor(endpoint: string) {
    this.dealer.connect(endpoint)
  }
  async send(service: string, frame: Buffer): Promise<void> {
    await this.dealer.send([EMPTY, Buffer.from('MDPC01'), Buffer.from(service), frame])
  }
  async request(service: string, id: number, timeoutMs: number, params: unknown = { a: 1, b: 2 }, method = 'add'): Promise<void> {
    await this.send(service, encodeRequest(id, service, method, timeoutMs, null, encodeCbor(params)))
  }
  /** The next answer: service name and the one envelope. */
  async answer(): Promise<{ service: string; env: ReturnType<typeof parseFrame>[number] }> {
    const [, , service, frame] = await this.dealer.receive()
    const envs = parseFrame(frame!)
    expect(envs).to.have.length(1)
    return { service: String(service), env: envs[0]! }
  }
  close(): void {
    this.dealer.close()
  }
}

const errorOf = (env: unknown): ErrorEnvelope => {
  expect(env).to.have.property('kind', Kind.Error)
  return env as ErrorEnvelope
}

async function startBroker(transport: (typeof TRANSPORTS)[number], options: BrokerOptions = {}): Promise<[Broker, string]> {
  const broker = new Broker({ ...HEARTBEAT, ...options })
  const [endpoint] = (await broker.bind(bindAddress(transport))) as [string]
  return [broker, endpoint]
}

for (const transport of TRANSPORTS) {
  describe(`broker bounds over ${transport}`, function () {
    this.timeout(10_000)

    it('answers UNAVAILABLE { notStarted } by default after heartbeat x liveness when no worker comes', async () => {
      const [broker, endpoint] = await startBroker(transport)
      const client = new RawClient(endpoint)
      try {
        const began = Date.now()
        await client.request('nobody', 1, 60_000)
        const err = errorOf((await client.answer()).env)
        expect(err).to.include({ code: 'UNAVAILABLE' })
        expect(err.details).to.deep.equal({ notStarted: true, broker: true })
        expect(Date.now() - began).to.be.below(5000)
        expect(broker.stats().services['nobody']).to.equal(undefined)
      } finally {
        client.close()
        await broker.close()
      }
    })

    it('counts queued bytes per service and in total: RESOURCE_EXHAUSTED { notStarted } past either', async () => {
      const [broker, endpoint] = await startBroker(transport, { maxQueuedBytesPerService: 250_000, maxQueuedBytes: 400_000, requestExpiryMs: 5000 })
      const client = new RawClient(endpoint)
      const big = { data: 'x'.repeat(100_000) }
      try {
        for (let id = 1; id <= 3; id++) await client.request('a', id, 5000, big, 'echo')
        const third = errorOf((await client.answer()).env)
        expect(third).to.include({ id: 3, code: 'RESOURCE_EXHAUSTED' })
        expect(third.details).to.deep.equal({ notStarted: true, broker: true })
        expect(broker.stats().services['a']).to.include({ queued: 2 })
        await client.request('b', 4, 5000, big, 'echo')
        await client.request('b', 5, 5000, big, 'echo')
        expect(errorOf((await client.answer()).env)).to.include({ id: 5, code: 'RESOURCE_EXHAUSTED' })
        expect(broker.stats().queuedBytes).to.be.within(300_000, 400_000)
        expect(broker.stats().rejected).to.include({ 'queue-bytes': 1, 'total-bytes': 1 })
      } finally {
        client.close()
        await broker.close()
      }
    })

    it('bounds the service names waiting with no worker: UNAVAILABLE { notStarted } at once past maxUnknownServices', async () => {
      const [broker, endpoint] = await startBroker(transport, { maxUnknownServices: 2, requestExpiryMs: 5000 })
      const client = new RawClient(endpoint)
      try {
        for (let id = 1; id <= 3; id++) await client.request(`made-up-${id}`, id, 5000)
        const { service, env } = await client.answer()
        expect(service).to.equal('made-up-3')
        expect(errorOf(env)).to.include({ id: 3, code: 'UNAVAILABLE' })
        expect(broker.stats().unknownServices).to.equal(2)
      } finally {
        client.close()
        await broker.close()
      }
    })

    it('refuses unreadable bodies on arrival: INVALID_ARGUMENT when an id is readable, else dropped and counted; nothing stays queued', async () => {
      const [broker, endpoint] = await startBroker(transport, { requestExpiryMs: 5000 })
      const client = new RawClient(endpoint)
      try {
        // Starts like an envelope (array, 1, 0, 7), then bytes that are no CBOR: unreadable zrpc. (A
        // body that does not start like one is a plain MDP request: broker-plain-mdp.test.ts.)
        await client.send('x1', Buffer.concat([encodeCbor([1, 0, 7]), Buffer.from([0xff])]))
        await client.send('x2', encodeCbor([1, 0, 7, 'not-x2', 'add', 1000, null, encodeCbor({})]))
        expect(errorOf((await client.answer()).env)).to.include({ id: 7, code: 'INVALID_ARGUMENT' })
        await until(() => broker.stats().dropped['unreadable'] === 1, 2000, 'the unreadable body counted')
        expect(broker.stats().services).to.deep.equal({})
        expect(broker.stats().queuedBytes).to.equal(0)
      } finally {
        client.close()
        await broker.close()
      }
    })

    it('refuses a READY for zrpc.broker or mmi.* from a peer, and answers zrpc.broker itself', async () => {
      const [broker, endpoint] = await startBroker(transport)
      const fake = new Dealer({ linger: 0, receiveTimeout: 2000 })
      fake.connect(endpoint)
      const client = new RpcClient({ broker: endpoint, timeoutMs: 3000 })
      try {
        for (const name of ['zrpc.broker', 'mmi.service']) {
          await fake.send([EMPTY, Buffer.from('MDPW01'), Buffer.of(0x01), Buffer.from(name)])
          const [, header, command] = await fake.receive()
          expect(String(header)).to.equal('MDPW01')
          expect(command![0]).to.equal(0x05)
        }
        expect(broker.stats().workers).to.equal(0)
        expect(broker.stats().dropped['forbidden-ready']).to.equal(2)
        const { BrokerAdmin } = await import('../../lib/index.js')
        const overview = await client.service(BrokerAdmin).services({})
        expect(overview.workers).to.deep.equal([])
      } finally {
        fake.close()
        await client.close()
        await broker.close()
      }
    })

    it('serves a call with a budget of 2^53-1 ms through a worker, and the server closes promptly after', async () => {
      const [broker, endpoint] = await startBroker(transport)
      const server = new RpcServer().implement(Calc, calcHandlers())
      await server.connectBroker(endpoint, HEARTBEAT)
      await until(() => broker.stats().services['calc']?.workers === 1, 5000, 'worker')
      const client = new RawClient(endpoint)
      try {
        await client.request('calc', 1, Number.MAX_SAFE_INTEGER, { ms: 50 }, 'slow')
        await client.request('calc', 2, 2 ** 31 + 5)
        expect((await client.answer()).env).to.include({ kind: Kind.Reply, id: 1 })
        expect((await client.answer()).env).to.include({ kind: Kind.Reply, id: 2 })
        const began = Date.now()
        await server.close({ timeoutMs: 500 })
        expect(Date.now() - began).to.be.below(2000)
      } finally {
        client.close()
        await server.close()
        await broker.close()
      }
    })
  })
}

describe('broker bounds: the broker parses with its own size limit', function () {
  this.timeout(10_000)
  it('carries a 5 MiB request through a broker configured for 8 MiB (not refused by a default 4 MiB parse)', async () => {
    const [broker, endpoint] = await startBroker('tcp', { maxMessageSize: 8 * 1024 * 1024 })
    const server = new RpcServer({ maxMessageSize: 8 * 1024 * 1024 }).implement(Calc, calcHandlers())
    await server.connectBroker(endpoint, HEARTBEAT)
    const client = new RpcClient({ broker: endpoint, timeoutMs: 5000, maxMessageSize: 8 * 1024 * 1024 })
    try {
      await until(() => broker.stats().services['calc']?.workers === 1, 5000, 'worker')
      const data = 'y'.repeat(5 * 1024 * 1024)
      expect(await client.service(Calc).echo({ data })).to.have.length(data.length)
    } finally {
      await client.close()
      await server.close()
      await broker.close()
    }
  })
})

describe('broker and worker heartbeats that differ', function () {
  this.timeout(15_000)
  for (const [brokerMs, workerMs] of [
    [100, 1000],
    [1000, 100],
  ] as const) {
    it(`a worker at ${workerMs} ms stays registered with a broker at ${brokerMs} ms, serves calls, and warns once`, async () => {
      const broker = new Broker({ heartbeatMs: brokerMs, liveness: 3 })
      const [endpoint] = (await broker.bind('tcp://127.0.0.1:*')) as [string]
      const events: string[] = []
      broker.onWorkerEvent((e) => events.push(`${e.kind} ${e.reason ?? ''}`))
      const warnings: string[] = []
      const dispatcher = new Dispatcher((service, method) => (service === 'calc' && method === 'add' ? async () => encodeCbor(3) : undefined))
      const worker = new BrokerWorker(dispatcher, endpoint, 'calc', { maxMessageSize: 1 << 20, credit: 1, heartbeatMs: workerMs, liveness: 3, onWarning: (w) => warnings.push(w) })
      const client = new RpcClient({ broker: endpoint, timeoutMs: 3000 })
      try {
        const end = Date.now() + 3500
        while (Date.now() < end) {
          expect(await client.service(Calc).add({ a: 1, b: 2 })).to.equal(3)
          await sleep(250)
        }
        expect(events).to.deep.equal(['joined '])
        expect(worker.stats.connects).to.equal(1)
        expect(warnings).to.have.length(1)
        expect(warnings[0]).to.include(`heartbeatMs: `).and.include(`set to ${workerMs} ms`)
      } finally {
        await client.close()
        await dispatcher.close(0)
        await worker.close()
        await broker.close()
      }
    })
  }
})

describe('BrokerWorker.stopTaking()', function () {
  this.timeout(10_000)
  it('sends DISCONNECT, gets nothing new, and still answers the request it holds', async () => {
    const broker = new Broker({ ...HEARTBEAT, requestExpiryMs: 300 })
    const [endpoint] = (await broker.bind('tcp://127.0.0.1:*')) as [string]
    const events: string[] = []
    broker.onWorkerEvent((e) => events.push(`${e.kind} ${e.reason ?? ''}`))
    let started = 0
    const dispatcher = new Dispatcher(() => async () => (started++, await sleep(400), encodeCbor(null)))
    const worker = new BrokerWorker(dispatcher, endpoint, 'calc', { maxMessageSize: 1 << 20, credit: 1, ...HEARTBEAT })
    const client = new RpcClient({ broker: endpoint, timeoutMs: 3000 })
    try {
      await until(() => broker.stats().workers === 1, 5000, 'worker')
      const held = client.service(Calc).slow({ ms: 0 })
      await until(() => started === 1, 2000, 'call started')
      await worker.stopTaking()
      const next = client.service(Calc).slow({ ms: 0 }).then(() => undefined, (e: unknown) => e)
      expect(await held).to.equal(null)
      const err = await next
      expect(err).to.have.property('code', 'UNAVAILABLE')
      expect(err).to.have.property('details').that.deep.equals({ notStarted: true, broker: true })
      expect(started).to.equal(1)
      expect(events).to.deep.equal(['joined ', 'left disconnected'])
    } finally {
      await client.close()
      await dispatcher.close(0)
      await worker.close()
      await broker.close()
    }
  })
})
