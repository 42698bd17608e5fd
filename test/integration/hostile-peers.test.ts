import { expect } from 'chai'
import { Dealer } from 'zeromq'
import { RpcClient, RpcServer } from '../../lib/index.js'
import { encodeCbor } from '../../lib/codec/cbor.js'
import { Kind, encodeRequest, parseFrame } from '../../lib/codec/envelope.js'
import { Calc, calcHandlers } from '../helpers/calc.js'
import { until } from '../helpers/endpoints.js'

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex')

/** Bad input of every kind the issue names, each with whether the server can answer it. */
function badMessages(seed: number): Array<{ frames: Buffer[]; answerable: boolean }> {
  const good = encodeRequest(seed, 'calc', 'add', 1000, null, encodeCbor({ a: 1, b: 2 }))
  return [
    { frames: [Buffer.from(`garbage ${seed} \u0000\u00ff`)], answerable: false },
    { frames: [good.subarray(0, good.length - 3)], answerable: false }, // truncated CBOR
    { frames: [good, good], answerable: false }, // wrong frame count
    { frames: [Buffer.alloc(0)], answerable: false },
    { frames: [hex('9b ffffffffffffffff')], answerable: false }, // huge declared length
    { frames: [hex('5b 00000000ffffffff 00')], answerable: false },
    { frames: [Buffer.alloc(5000, 0x81)], answerable: false }, // deep nesting
    { frames: [hex('d81c 81 d81d 00')], answerable: false }, // cyclic-graph tags
    { frames: [encodeCbor([2, Kind.Request, seed, 'calc', 'add', 1000, null, Buffer.alloc(0)])], answerable: true }, // wrong version
    { frames: [encodeCbor([1, 9, seed])], answerable: true }, // unknown kind
    { frames: [encodeCbor([1, Kind.Request, seed, 'calc', 'add', 'soon', null, Buffer.alloc(0)])], answerable: true },
    { frames: [encodeRequest(seed, 'calc', 'add', 1000, null, hex('ff ff'))], answerable: true }, // params not CBOR
    { frames: [encodeRequest(seed, 'calc', 'add', 1000, null, encodeCbor({ a: 'x' }))], answerable: true },
    { frames: [encodeRequest(seed, 'nope', 'nope', 1000, null, encodeCbor({}))], answerable: true },
    { frames: [encodeCbor([1, Kind.Reply, seed, Buffer.alloc(1)])], answerable: false }, // reply sent to a server
  ]
}

describe('bad input from a raw ZeroMQ peer', function () {
  this.timeout(30_000)

  it('answers what it can, drops and counts the rest, and keeps serving other clients', async () => {
    const server = new RpcServer().implement(Calc, calcHandlers())
    const [endpoint] = await server.bind('tcp://127.0.0.1:*')
    const attacker = new Dealer({ linger: 0 })
    attacker.connect(endpoint!)
    const client = new RpcClient({ connect: endpoint!, timeoutMs: 5000 })
    try {
      let sent = 0
      let answerable = 0
      for (let round = 0; round < 250; round++) {
        for (const { frames, answerable: canAnswer } of badMessages(round)) {
          await attacker.send(frames)
          sent++
          if (canAnswer) answerable++
        }
      }
      expect(sent).to.be.above(3000)

      // Every answerable message comes back as an ERROR envelope with its id.
      const codes = new Map<string, number>()
      let answers = 0
      attacker.receiveTimeout = 5000
      while (answers < answerable) {
        const [frame] = await attacker.receive()
        for (const env of parseFrame(frame!)) {
          expect(env.kind).to.equal(Kind.Error)
          if (env.kind === Kind.Error) codes.set(env.code, (codes.get(env.code) ?? 0) + 1)
          answers++
        }
      }
      expect([...codes.keys()].sort()).to.deep.equal(['FAILED_PRECONDITION', 'INVALID_ARGUMENT', 'UNIMPLEMENTED'])

      // And a good call from another client still works.
      expect(await client.service(Calc).add({ a: 20, b: 22 })).to.equal(42)
      await until(() => server.stats.input[0]!.badFrameCount + server.stats.input[0]!.malformed > 0)
      const input = server.stats.input[0]!
      expect(input.badFrameCount).to.equal(250) // the two-frame messages
      // 6 unreadable frames + 3 unreadable envelopes per round. The empty body is not among them: on a
      // ROUTER with peer notices (ZMQ_ROUTER_NOTIFY) an empty body is how libzmq says a peer came or went.
      expect(input.malformed).to.equal(250 * 9)
      expect(input.unexpectedKind).to.equal(250)
    } finally {
      attacker.close()
      await client.close()
      await server.close()
    }
  })
})
