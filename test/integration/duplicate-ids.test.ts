/**
 * A REQUEST sent again with the id of a call still in progress, through a broker (found by the fuzz
 * suites, test/fuzz/). A server drops such a request (an answer would end the first call at its
 * caller); through a broker the duplicate used to keep a place of the worker's credit: at the broker
 * (it counted the worker as holding both, and released one), and at the worker (it held the second
 * until its deadline, which a caller may set to 2^53 - 1 ms). Two messages of two REQUESTs each took
 * a worker of concurrency 2 out of service for good.
 */
import { expect } from 'chai'
import { Dealer, Router } from 'zeromq'
import { Broker, RpcClient, RpcServer } from '../../lib/index.js'
import { encodeCbor } from '../../lib/codec/cbor.js'
import { Kind, MAX_ID, encodeRequest, parseFrame, type Envelope, type Malformed } from '../../lib/codec/envelope.js'
import { Calc, calcHandlers } from '../helpers/calc.js'
import { sleep, until } from '../helpers/endpoints.js'

const EMPTY = Buffer.alloc(0)
const MDPC01 = Buffer.from('MDPC01')
const MDPW01 = Buffer.from('MDPW01')
/** echo answers after a microtask: the second REQUEST arrives while the first is still in progress. */
const echo = (id: number): Buffer => encodeRequest(id, 'calc', 'echo', MAX_ID, null, encodeCbor({ data: 'x' }))

describe('a REQUEST repeating the id of a call in progress, through a broker', function () {
  this.timeout(10_000)

  it('takes no credit at the broker or the worker: the worker keeps serving everyone', async () => {
    const broker = new Broker({ heartbeatMs: 1000 })
    const [endpoint] = (await broker.bind('tcp://127.0.0.1:*')) as [string]
    const server = new RpcServer().implement(Calc, calcHandlers())
    await server.connectBroker(endpoint, { concurrency: 2, heartbeatMs: 1000 })
    const attacker = new Dealer({ linger: 0, receiveTimeout: 3000 })
    attacker.connect(endpoint)
    const honest = new RpcClient({ broker: endpoint, timeoutMs: 1500 })
    try {
      await until(() => broker.stats().workerList.some((w) => w.credit === 2), 3000, 'the worker')
      for (const id of [7, 8]) {
        await attacker.send([EMPTY, MDPC01, Buffer.from('calc'), Buffer.concat([echo(id), echo(id)])])
        const [, , , frame] = await attacker.receive()
        expect(parseFrame(frame!).map((e) => [e.kind, e.id])).to.deep.equal([[Kind.Reply, id]])
      }
      await sleep(50)
      expect(broker.stats().workerList.map((w) => w.holding)).to.deep.equal([0])
      expect(broker.stats().dropped['duplicate-id']).to.equal(2)
      expect(server.stats.broker[0]!.holding).to.equal(0)
      for (let i = 0; i < 3; i++) expect(await honest.service(Calc).add({ a: i, b: 1 })).to.equal(i + 1)
    } finally {
      attacker.close()
      await honest.close()
      await server.close({ timeoutMs: 200 })
      await broker.close()
    }
  })

  it('a worker given the same id twice by its broker drops the second (counted) and holds nothing after answering the first', async () => {
    const fakeBroker = new Router({ linger: 0, receiveTimeout: 3000 })
    await fakeBroker.bind('tcp://127.0.0.1:*')
    const server = new RpcServer().implement(Calc, calcHandlers())
    await server.connectBroker(fakeBroker.lastEndpoint!, { concurrency: 4, heartbeatMs: 5000 })
    try {
      const [worker] = await fakeBroker.receive() // READY
      const client = Buffer.from('client-1')
      await fakeBroker.send([worker!, EMPTY, MDPW01, Buffer.of(0x02), client, EMPTY, Buffer.concat([echo(7), echo(7)])])
      const answers: Array<Envelope | Malformed> = []
      while (answers.length === 0) {
        const frames = await fakeBroker.receive()
        if (frames[3]?.[0] === 0x03) answers.push(...parseFrame(frames[6]!))
      }
      expect(answers.map((e) => [e.kind, e.id])).to.deep.equal([[Kind.Reply, 7]])
      await until(() => server.stats.broker[0]!.holding === 0, 1000, 'the worker to hold nothing')
      expect(server.stats.calls.duplicateIds).to.equal(1)
    } finally {
      await server.close({ timeoutMs: 200 })
      fakeBroker.close()
    }
  })
})

describe('a call with an id of 2^32 or more, through a broker', function () {
  this.timeout(10_000)

  it('gets its worker\'s ERROR, and the worker\'s credit comes back', async () => {
    // Found by the fuzz suite: the worker's ERROR carried the id as a float (cbor-x), which the broker
    // could not read as a header: dropped (unknown-call), the caller left to its deadline, and one
    // place of the worker's credit lost for good, so `concurrency` such calls took it out of service.
    const broker = new Broker({ heartbeatMs: 1000 })
    const [endpoint] = (await broker.bind('tcp://127.0.0.1:*')) as [string]
    const server = new RpcServer().implement(Calc, calcHandlers())
    await server.connectBroker(endpoint, { concurrency: 2, heartbeatMs: 1000 })
    const attacker = new Dealer({ linger: 0, receiveTimeout: 3000 })
    attacker.connect(endpoint)
    try {
      await until(() => broker.stats().workerList.some((w) => w.credit === 2), 3000, 'the worker')
      for (const id of [2 ** 32, 2 ** 40, MAX_ID]) {
        // Params the handler refuses: the worker answers with an ERROR (written with cbor-x).
        await attacker.send([EMPTY, MDPC01, Buffer.from('calc'), encodeRequest(id, 'calc', 'add', 5000, null, encodeCbor({ a: 'x' }))])
        const [, , , frame] = await attacker.receive()
        expect(parseFrame(frame!)[0]).to.include({ kind: Kind.Error, id, code: 'INVALID_ARGUMENT' })
      }
      await sleep(20)
      expect(broker.stats().workerList.map((w) => w.holding)).to.deep.equal([0])
      expect(broker.stats().dropped['unknown-call']).to.equal(0)
    } finally {
      attacker.close()
      await server.close({ timeoutMs: 200 })
      await broker.close()
    }
  })
})
