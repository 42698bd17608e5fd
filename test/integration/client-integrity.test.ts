import { expect } from 'chai'
import { RpcClient, RpcError } from '../../lib/index.js'
import { encodeCbor } from '../../lib/codec/cbor.js'
import { encodeReply } from '../../lib/codec/envelope.js'
import { MDPC01 } from '../../patterns/majordomo-protocol.js'
import { Calc } from '../helpers/calc.js'
import { rejection, sleep, until } from '../helpers/endpoints.js'
import { RawServer, requestsIn } from './client-raw-server.js'

describe('a client against a server that breaks the contract', function () {
  this.timeout(8000)
  let peer: RawServer
  let client: RpcClient
  let answer: (id: number) => Buffer[]

  beforeEach(async () => {
    peer = await RawServer.start('tcp://127.0.0.1:*', async (from, [frame], raw) => {
      for (const request of requestsIn(frame)) for (const reply of answer(request.id)) await raw.send(from, reply)
    })
    client = new RpcClient({ connect: peer.endpoint, timeoutMs: 3000 })
  })
  afterEach(async () => {
    await client.close()
    await peer.close()
  })

  it('checks results against the schema by default: a string for a number ends the call INTERNAL', async () => {
    answer = (id) => [encodeReply(id, encodeCbor('not a number'))]
    const err = await rejection(client.service(Calc).add({ a: 1, b: 1 }))
    expect(err).to.be.instanceOf(RpcError).with.property('code', 'INTERNAL')
    expect((err as RpcError).message).to.match(/result of calc.add does not match its schema/)
    const trusting = new RpcClient({ connect: peer.endpoint, timeoutMs: 3000, validateResults: false })
    try {
      expect(await trusting.service(Calc).add({ a: 1, b: 1 })).to.equal('not a number')
    } finally {
      await trusting.close()
    }
  })

  it('ends a call at once as UNKNOWN when an ERROR carries a code that is not text', async () => {
    answer = (id) => [encodeCbor([1, 2, id, 42, 'odd code', null])]
    const err = await rejection(client.service(Calc).add({ a: 1, b: 1 }))
    expect(err).to.be.instanceOf(RpcError).with.property('code', 'UNKNOWN')
    expect((err as RpcError).message).to.include('42')
  })

  it('ignores and counts envelopes of an unknown kind, and takes the reply that follows', async () => {
    answer = (id) => [Buffer.concat([encodeCbor([1, 10, id, 'from the future']), encodeReply(id, encodeCbor(2))])]
    expect(await client.service(Calc).add({ a: 1, b: 1 })).to.equal(2)
    expect(client.stats[0]!.unknownKinds).to.equal(1)
    expect(client.stats[0]!.malformed).to.equal(0)
  })
})

describe('a client against a hostile broker', function () {
  this.timeout(8000)

  it('accepts one envelope per MDP reply, only from the service its call went to; drops and counts the rest', async () => {
    const seen: Array<{ from: Buffer; service: string; id: number }> = []
    const broker = await RawServer.start('tcp://127.0.0.1:*', (from, [, , service, frame]) => {
      for (const request of requestsIn(frame)) seen.push({ from, service: service!.toString(), id: request.id })
    })
    const client = new RpcClient({ broker: broker.endpoint, timeoutMs: 3000 })
    const mdp = (service: string, frame: Buffer): Buffer[] => [Buffer.alloc(0), Buffer.from(MDPC01), Buffer.from(service), frame]
    try {
      const toCalc = client.call('calc', 'add', encodeCbor({ a: 1, b: 1 }))
      const toStore = client.call('store', 'get', encodeCbor({}))
      await until(() => seen.length === 2, 2000, 'both requests at the broker')
      const calc = seen.find((s) => s.service === 'calc')!
      const store = seen.find((s) => s.service === 'store')!
      // A worker of 'calc' answers the call made to 'store'.
      await broker.send(calc.from, ...mdp('calc', encodeReply(store.id, encodeCbor('forged'))))
      // One MDP reply holding a CBOR sequence of REPLYs for both calls.
      await broker.send(calc.from, ...mdp('calc', Buffer.concat([encodeReply(calc.id, encodeCbor('forged')), encodeReply(store.id, encodeCbor('forged'))])))
      // A REPLY for an id this client never sent.
      await broker.send(calc.from, ...mdp('calc', encodeReply(calc.id + 1000, encodeCbor('forged'))))
      await until(() => client.stats[0]!.misrouted === 2 && client.stats[0]!.lateReplies === 1, 2000, 'the forged replies to be dropped')
      await broker.send(store.from, ...mdp('store', encodeReply(store.id, encodeCbor('store result'))))
      await broker.send(calc.from, ...mdp('calc', encodeReply(calc.id, encodeCbor(2))))
      expect(await toCalc).to.deep.equal(encodeCbor(2))
      expect(await toStore).to.deep.equal(encodeCbor('store result'))
      await sleep(10)
      expect(client.stats[0]!.misrouted).to.equal(2)
    } finally {
      await client.close()
      await broker.close()
    }
  })
})
