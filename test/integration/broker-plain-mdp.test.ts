/**
 * The zrpc broker as a broker for every Majordomo peer: plain 7/MDP requests whose bodies are not
 * zrpc go unopened to plain workers and their one reply comes back as it was, frames and all, as
 * with the guide's reference broker; typed zrpc peers on other services are served beside them.
 */
import { expect } from 'chai'
import { Dealer } from 'zeromq'
import { Broker, RpcClient, RpcServer } from '../../lib/index.js'
import { MajordomoClient, MajordomoWorker } from '../../patterns/majordomo.js'
import { Calc, calcHandlers } from '../helpers/calc.js'
import { until } from '../helpers/endpoints.js'

const HEARTBEAT = { heartbeatMs: 200, liveness: 5 }

describe('plain 7/MDP peers through the zrpc broker', function () {
  this.timeout(10_000)
  const cleanup: Array<() => Promise<void> | void> = []
  let broker: Broker
  let endpoint: string

  beforeEach(async () => {
    broker = new Broker(HEARTBEAT)
    ;[endpoint] = (await broker.bind('tcp://127.0.0.1:*')) as [string]
  })

  afterEach(async () => {
    for (const close of cleanup.splice(0).reverse()) await close()
    await broker.close()
  })

  /** The guide's echo worker: answers each request with its body, upper-cased, frame by frame. */
  function plainWorker(service: string): void {
    const worker = new MajordomoWorker(endpoint, service, { heartbeatMs: HEARTBEAT.heartbeatMs })
    const served = (async () => {
      for await (const req of worker) await req.reply(req.body.map((f) => f.toString().toUpperCase()))
    })()
    cleanup.push(async () => {
      await worker.close()
      await served
    })
  }

  it('routes a plain client to a plain worker unopened, one reply per request, next to typed zrpc calls', async () => {
    plainWorker('echo')
    const server = new RpcServer().implement(Calc, calcHandlers())
    await server.connectBroker(endpoint, { ...HEARTBEAT, concurrency: 4 })
    cleanup.push(() => server.close({ timeoutMs: 200 }))
    await until(() => broker.stats().workers === 2, 5000, 'both workers')

    const plain = new MajordomoClient(endpoint, { timeoutMs: 2000, retries: 1 })
    cleanup.push(() => plain.close())
    const reply = await plain.request('echo', ['hello', 'world'])
    expect(reply?.map(String)).to.deep.equal(['HELLO', 'WORLD'])

    const typed = new RpcClient({ broker: endpoint })
    cleanup.push(() => typed.close())
    expect(await typed.service(Calc).add({ a: 2, b: 3 })).to.equal(5)
    expect(broker.stats().services['echo']).to.include({ requests: 1, replies: 1 })
  })

  it('takes hand-built reference frames: [empty, MDPC01, service, body...] in, the same shape out', async () => {
    plainWorker('echo')
    await until(() => broker.stats().workers === 1, 5000, 'the worker')
    const client = new Dealer({ linger: 0 })
    cleanup.push(() => client.close())
    client.connect(endpoint)
    // Ten pipelined requests, some of several frames, one a binary frame that is no CBOR envelope.
    for (let i = 0; i < 10; i++) await client.send([Buffer.alloc(0), Buffer.from('MDPC01'), Buffer.from('echo'), Buffer.from(`req-${i}`), Buffer.from('x')])
    await client.send([Buffer.alloc(0), Buffer.from('MDPC01'), Buffer.from('echo'), Buffer.from([0xff, 0x00, 0x83])])
    const replies: string[] = []
    for (let i = 0; i < 11; i++) {
      const [empty, header, service, ...body] = await client.receive()
      expect(empty!.length).to.equal(0)
      expect(header!.toString()).to.equal('MDPC01')
      expect(service!.toString()).to.equal('echo')
      replies.push(body.map(String).join('|'))
    }
    expect(replies.slice(0, 10)).to.deep.equal(Array.from({ length: 10 }, (_, i) => `REQ-${i}|X`))
    expect(replies).to.have.length(11)
  })

  it('never gives a plain request to a zrpc worker; it waits for a plain one', async () => {
    const server = new RpcServer().implement(Calc, calcHandlers())
    await server.connectBroker(endpoint, { ...HEARTBEAT, concurrency: 4 })
    cleanup.push(() => server.close({ timeoutMs: 200 }))
    await until(() => broker.stats().workers === 1, 5000, 'the zrpc worker')
    const client = new Dealer({ linger: 0 })
    cleanup.push(() => client.close())
    client.connect(endpoint)
    await client.send([Buffer.alloc(0), Buffer.from('MDPC01'), Buffer.from('calc'), Buffer.from('plain text')])
    await until(() => broker.stats().services['calc']?.queued === 1, 2000, 'the plain request to queue')
    expect(server.stats.broker[0]).to.include({ malformed: 0 })
    plainWorker('calc')
    const [, , , body] = await client.receive()
    expect(body!.toString()).to.equal('PLAIN TEXT')
  })

  it('lets a plain request wait for a plain worker no longer than requestExpiryMs when the service has only zrpc workers', async () => {
    // Found by the fuzz suite (test/fuzz/broker.test.ts): plain requests to a service served by zrpc
    // workers alone never expired (the expiry applied only to a service with no worker at all), so
    // 8-byte messages from any client filled the service's queue and every typed call after them was
    // refused RESOURCE_EXHAUSTED, for good.
    const small = new Broker({ ...HEARTBEAT, maxQueuePerService: 50 })
    const [at] = (await small.bind('tcp://127.0.0.1:*')) as [string]
    cleanup.push(() => small.close())
    const server = new RpcServer().implement(Calc, calcHandlers())
    await server.connectBroker(at, { ...HEARTBEAT, concurrency: 2 })
    cleanup.push(() => server.close({ timeoutMs: 200 }))
    await until(() => small.stats().workers === 1, 5000, 'the zrpc worker')
    const attacker = new Dealer({ linger: 0 })
    cleanup.push(() => attacker.close())
    attacker.connect(at)
    for (let i = 0; i < 50; i++) await attacker.send([Buffer.alloc(0), Buffer.from('MDPC01'), Buffer.from('calc'), Buffer.from('not zrpc')])
    await until(() => small.stats().rejected['opaque-expired'] === 50, HEARTBEAT.heartbeatMs * HEARTBEAT.liveness + 2000, 'the plain requests to expire')
    expect(small.stats().services['calc']?.queued ?? 0).to.equal(0)
    const client = new RpcClient({ broker: at, timeoutMs: 2000 })
    cleanup.push(() => client.close())
    expect(await client.service(Calc).add({ a: 1, b: 2 })).to.equal(3)
  })
})
