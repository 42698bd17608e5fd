/**
 * zrpc's extension to 7/MDP (docs/protocol.md, "Credit workers and joined calls"): clients join the
 * calls of one turn once the broker answered mmi.zrpc, credit workers take many requests at once,
 * and every hop carries joined frames; plain MDP peers and brokers keep one request per message.
 */
import { expect } from 'chai'
import { Dealer } from 'zeromq'
import { Broker, RpcClient, RpcError, RpcServer } from '../../lib/index.js'
import { decodeCbor, encodeCbor } from '../../lib/codec/cbor.js'
import { Kind, encodeReply, encodeRequest, parseFrame, type RequestEnvelope } from '../../lib/codec/envelope.js'
import { MajordomoBroker } from '../../patterns/majordomo.js'
import { Calc, calcHandlers } from '../helpers/calc.js'
import { rejection, sleep, until } from '../helpers/endpoints.js'

const HEARTBEAT = { heartbeatMs: 100, liveness: 3 }
const EMPTY = Buffer.alloc(0)
const MDPW01 = Buffer.from('MDPW01')
const READY = Buffer.of(0x01)
const REPLY = Buffer.of(0x03)
const DISCONNECT = Buffer.of(0x05)

/** A hand-driven worker: sends READY (with `extra` frames), then hands every REQUEST to `serve`. */
class RawWorker {
  readonly socket = new Dealer({ linger: 0 })
  /** Envelopes per REQUEST message received, in order. */
  readonly perMessage: number[] = []
  readonly commands: number[] = []
  private readonly loop: Promise<void>

  constructor(endpoint: string, extra: Buffer[], serve: (client: Buffer, requests: RequestEnvelope[]) => Buffer[] | undefined) {
    this.socket.connect(endpoint)
    void this.socket.send([EMPTY, MDPW01, READY, Buffer.from('calc'), ...extra])
    this.loop = (async () => {
      for await (const frames of this.socket) {
        const command = frames[2]?.[0] ?? 0
        this.commands.push(command)
        if (command !== 0x02) continue
        const client = frames[3]!
        const envelopes = parseFrame(frames[5]!)
        this.perMessage.push(envelopes.length)
        const replies = serve(client, envelopes.filter((e): e is RequestEnvelope => e.kind === Kind.Request))
        for (const reply of replies ?? []) await this.socket.send([EMPTY, MDPW01, REPLY, client, EMPTY, reply])
      }
    })().catch(() => undefined)
  }

  async close(): Promise<void> {
    this.socket.close()
    await this.loop
  }
}

/** Answers every request of calc.add with its sum, one REPLY message per envelope. */
const addAll = (_client: Buffer, requests: RequestEnvelope[]): Buffer[] =>
  requests.map((r) => {
    const { a, b } = decodeCbor(r.params) as { a: number; b: number }
    return encodeReply(r.id, encodeCbor(a + b))
  })

describe('credit workers and joined calls through the broker', function () {
  this.timeout(15_000)
  const closers: Array<() => Promise<void> | void> = []
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close()
  })

  async function broker(): Promise<{ broker: Broker; endpoint: string }> {
    const b = new Broker(HEARTBEAT)
    const [endpoint] = (await b.bind('tcp://127.0.0.1:*')) as [string]
    closers.push(() => b.close())
    return { broker: b, endpoint }
  }

  function client(endpoint: string): RpcClient {
    const c = new RpcClient({ broker: endpoint, timeoutMs: 5000 })
    closers.push(() => c.close())
    return c
  }

  it('joins the calls of a turn on every hop once mmi.zrpc said 200, and holds at most the credit at the worker', async () => {
    const { broker: b, endpoint } = await broker()
    let running = 0
    let most = 0
    const server = new RpcServer().implement(Calc, {
      ...calcHandlers(),
      add: async ({ a, b: y }) => {
        most = Math.max(most, ++running)
        await sleep(5)
        running--
        return a + y
      },
    })
    await server.connectBroker(endpoint, { ...HEARTBEAT, concurrency: 8 })
    closers.push(() => server.close())
    await until(() => b.stats().workerList[0]?.credit === 8, 5000, 'credit worker')
    const calc = client(endpoint).service(Calc)
    expect(await calc.add({ a: 1, b: 1 })).to.equal(2)
    const before = b.stats().transport!.received
    const sums = await Promise.all(Array.from({ length: 64 }, (_, i) => calc.add({ a: i, b: 1 })))
    expect(sums).to.deep.equal(Array.from({ length: 64 }, (_, i) => i + 1))
    // One message per call each way would be 128 messages in (64 requests, 64 replies).
    const received = b.stats().transport!.received - before
    expect(received).to.be.below(64)
    expect(most).to.equal(8)
    const stats = b.stats()
    expect(stats.services['calc']).to.include({ requests: 65, replies: 65, inFlight: 0, queued: 0 })
    expect(stats.transport!.send.frames).to.be.below(stats.transport!.send.messages)
  })

  it('gives a plain 7/MDP worker one request per message, even when the client joins its calls', async () => {
    const { broker: b, endpoint } = await broker()
    const worker = new RawWorker(endpoint, [], addAll)
    closers.push(() => worker.close())
    await until(() => b.stats().workerList.length === 1, 5000, 'plain worker')
    expect(b.stats().workerList[0]).to.include({ credit: 1 })
    const calc = client(endpoint).service(Calc)
    expect(await calc.add({ a: 2, b: 2 })).to.equal(4)
    expect(await Promise.all(Array.from({ length: 20 }, (_, i) => calc.add({ a: i, b: i })))).to.deep.equal(Array.from({ length: 20 }, (_, i) => 2 * i))
    expect(worker.perMessage).to.have.length(21)
    expect(worker.perMessage.every((n) => n === 1)).to.equal(true)
  })

  it('sends one call per message through a broker that does not answer mmi.zrpc (the reference answers 501)', async () => {
    const reference = new MajordomoBroker({ heartbeatMs: HEARTBEAT.heartbeatMs, liveness: HEARTBEAT.liveness })
    const endpoint = await reference.bind('tcp://127.0.0.1:*')
    closers.push(() => reference.close())
    // A zrpc worker behind it: its credit frame is ignored, so it gets one request at a time.
    const worker = new RawWorker(endpoint, [encodeCbor({ credit: 8 })], addAll)
    closers.push(() => worker.close())
    const calc = client(endpoint).service(Calc)
    expect(await calc.add({ a: 1, b: 2 })).to.equal(3)
    expect(await Promise.all(Array.from({ length: 10 }, (_, i) => calc.add({ a: i, b: 0 })))).to.deep.equal(Array.from({ length: 10 }, (_, i) => i))
    expect(worker.perMessage.every((n) => n === 1)).to.equal(true)
    expect(worker.perMessage).to.have.length(11)
  })

  it('gives a client that never asked mmi.zrpc one answer per message, though its requests reach the worker joined', async () => {
    const { broker: b, endpoint } = await broker()
    const server = new RpcServer().implement(Calc, calcHandlers())
    await server.connectBroker(endpoint, { ...HEARTBEAT, concurrency: 16 })
    closers.push(() => server.close())
    await until(() => b.stats().workerList[0]?.credit === 16, 5000, 'credit worker')
    const raw = new Dealer({ linger: 0 })
    closers.push(() => raw.close())
    raw.connect(endpoint)
    for (let id = 1; id <= 10; id++) {
      void raw.send([EMPTY, Buffer.from('MDPC01'), Buffer.from('calc'), encodeRequest(id, 'calc', 'add', 5000, null, encodeCbor({ a: id, b: 0 }))])
    }
    const ids: number[] = []
    for (let i = 0; i < 10; i++) {
      const frames = await raw.receive()
      expect(frames).to.have.length(4)
      const envelopes = parseFrame(frames[3]!)
      expect(envelopes).to.have.length(1)
      expect(envelopes[0]).to.include({ kind: Kind.Reply })
      ids.push(envelopes[0]!.id!)
    }
    expect(ids.sort((x, y) => x - y)).to.deep.equal(Array.from({ length: 10 }, (_, i) => i + 1))
  })

  it('refuses a READY whose zrpc worker frame is not { credit: 1..4096 } with DISCONNECT, and counts it', async () => {
    const { broker: b, endpoint } = await broker()
    for (const extra of [[Buffer.from('garbage')], [encodeCbor({ credit: 0 })], [encodeCbor({ credit: 5000 })], [encodeCbor({ credit: 2 }), EMPTY]]) {
      const worker = new RawWorker(endpoint, extra, () => undefined)
      await until(() => worker.commands.includes(DISCONNECT[0]!), 2000, 'DISCONNECT')
      await worker.close()
    }
    expect(b.stats().dropped['bad-ready']).to.equal(4)
    expect(b.stats().workers).to.equal(0)
  })

  it('drops a credit worker\'s answers for calls it does not hold, and ends the calls it held as workerLost when it goes', async () => {
    const { broker: b, endpoint } = await broker()
    let seen = 0
    // Forges: an answer for an id it was not given, and one for another client; never a real answer.
    const worker = new RawWorker(endpoint, [encodeCbor({ credit: 4 })], (_client, requests) => {
      seen += requests.length
      return requests.flatMap((r) => [Buffer.concat([encodeReply(r.id + 1000, encodeCbor(666)), encodeReply(r.id + 2000, encodeCbor(666))])])
    })
    await until(() => b.stats().workerList[0]?.credit === 4, 5000, 'credit worker')
    const calc = client(endpoint).service(Calc)
    const calls = Array.from({ length: 4 }, (_, i) => rejection(calc.add({ a: i, b: 0 })))
    await until(() => seen === 4, 2000, 'the worker to hold all four')
    await until(() => (b.stats().dropped['unknown-call'] ?? 0) >= 8, 2000, 'forged answers dropped')
    expect(b.stats().services['calc']).to.include({ inFlight: 4, replies: 0 })
    await worker.close()
    for (const err of await Promise.all(calls)) {
      expect(err).to.be.instanceOf(RpcError).with.property('code', 'UNAVAILABLE')
      expect((err as RpcError).details).to.deep.include({ workerLost: true })
    }
  })
})
