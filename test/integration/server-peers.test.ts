import { expect } from 'chai'
import { RpcClient, RpcServer } from '../../lib/index.js'
import { encodeCbor } from '../../lib/codec/cbor.js'
import { Kind, encodeRequest } from '../../lib/codec/envelope.js'
import { Calc, calcHandlers, type CalcProbe } from '../helpers/calc.js'
import { TRANSPORTS, bindAddress, sleep, until } from '../helpers/endpoints.js'
import { rawPeer, slowRequest as slow } from './server-raw-peer.js'

describe('server: a greedy peer', function () {
  this.timeout(15_000)

  it("holds at most its share: other clients' calls succeed while it floods 1,280 slow calls, and its excess gets RESOURCE_EXHAUSTED { notStarted }", async () => {
    const server = new RpcServer().implement(Calc, calcHandlers())
    const [endpoint] = await server.bind('tcp://127.0.0.1:*')
    const greedy = rawPeer(endpoint!)
    const client = new RpcClient({ connect: endpoint!, timeoutMs: 2000 })
    try {
      for (let i = 1; i <= 1280; i++) await greedy.socket.send(slow(i, 3000))
      await until(() => server.stats.calls.received >= 1280, 5000, 'the flood to arrive')
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => client.service(Calc).add({ a: i, b: 1 })))
      expect(results).to.deep.equal(Array.from({ length: 20 }, (_, i) => i + 1))
      await until(() => greedy.received.length >= 960, 2000, 'the refusals')
      const refused = greedy.received.filter((e) => e.kind === Kind.Error)
      expect(refused).to.have.length(1280 - 320)
      for (const e of refused) if (e.kind === Kind.Error) expect(e).to.deep.include({ code: 'RESOURCE_EXHAUSTED', details: { notStarted: true } })
      expect(server.stats.calls.rejectedPeerShare).to.equal(960)
    } finally {
      greedy.stop()
      await client.close()
      await server.close({ timeoutMs: 200 })
    }
  })
})

describe('server: a peer that leaves', function () {
  this.timeout(10_000)

  // libzmq 4.3.5 raises no ROUTER_NOTIFY notices for inproc peers, so an inproc peer's leaving cannot be seen.
  for (const transport of TRANSPORTS.filter((t) => t !== 'inproc')) {
    it(`cancels its calls over ${transport}: running handlers' signals abort CANCELLED, queued ones never start`, async () => {
      const probe: CalcProbe = { aborted: [], started: 0 }
      const server = new RpcServer({ maxConcurrent: 4 }).implement(Calc, calcHandlers(probe))
      const [endpoint] = await server.bind(bindAddress(transport))
      const leaving = rawPeer(endpoint!)
      try {
        for (let i = 1; i <= 5; i++) await leaving.socket.send(slow(i, 5000))
        await until(() => probe.started === 3 && server.stats.calls.queued === 2, 2000, 'three running, two queued')
        leaving.stop()
        await until(() => probe.aborted.length === 3, 2000, 'the handlers to abort')
        expect(probe.aborted.map((r) => (r as { code: string }).code)).to.deep.equal(['CANCELLED', 'CANCELLED', 'CANCELLED'])
        expect(server.stats.calls).to.include({ peerGone: 5, running: 0, queued: 0, peers: 0 })
        await sleep(20)
        expect(probe.started).to.equal(3)
      } finally {
        leaving.stop()
        await server.close({ timeoutMs: 200 })
      }
    })
  }
})

describe('server: duplicate call ids from one peer', function () {
  this.timeout(10_000)

  it('drops a REQUEST reusing the id of a call in progress, without disturbing the first, and counts it', async () => {
    const probe: CalcProbe = { aborted: [], started: 0 }
    const server = new RpcServer().implement(Calc, calcHandlers(probe))
    const [endpoint] = await server.bind('tcp://127.0.0.1:*')
    const peer = rawPeer(endpoint!)
    try {
      await peer.socket.send(slow(5, 200))
      await until(() => probe.started === 1, 2000, 'the first call to start')
      await peer.socket.send(encodeRequest(5, 'calc', 'add', 5000, null, encodeCbor({ a: 1, b: 2 })))
      await peer.socket.send(encodeRequest(5, 'calc', 'nope', 5000, null, encodeCbor({})))
      await until(() => peer.received.length === 1, 2000, 'the first call to be answered')
      await sleep(50)
      expect(peer.received).to.have.length(1)
      expect(peer.received[0]).to.include({ kind: Kind.Reply, id: 5 })
      expect(probe.aborted).to.deep.equal([])
      expect(server.stats.calls.duplicateIds).to.equal(2)
    } finally {
      peer.stop()
      await server.close({ timeoutMs: 200 })
    }
  })
})
