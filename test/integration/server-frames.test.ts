import { expect } from 'chai'
import { RpcClient, RpcServer } from '../../lib/index.js'
import { Kind } from '../../lib/codec/envelope.js'
import { Calc, calcHandlers } from '../helpers/calc.js'
import { probeWhile, report } from '../helpers/hostile.js'
import { TRANSPORTS, bindAddress, until } from '../helpers/endpoints.js'
import { frameOfRequests, rawPeer } from './server-raw-peer.js'

describe('server: one frame holding tens of thousands of REQUESTs', function () {
  this.timeout(20_000)

  // Past 100,000 the old send queue's message cap dropped answers without a word: tcp carries more.
  for (const [transport, n] of TRANSPORTS.map((t) => [t, t === 'tcp' ? 150_000 : 50_000] as const)) {
    it(`answers every one of ${n} REQUESTs in one frame over ${transport}, while another client is served within its deadline`, async () => {
      const server = new RpcServer({ maxMessageSize: 8 * 1024 * 1024 }).implement(Calc, calcHandlers())
      const [endpoint] = await server.bind(bindAddress(transport))
      const flood = rawPeer(endpoint!)
      const client = new RpcClient({ connect: endpoint!, timeoutMs: 3000 })
      try {
        expect(await client.service(Calc).add({ a: 1, b: 1 })).to.equal(2)
        const started = performance.now()
        await flood.socket.send(frameOfRequests(n))
        const done = until(() => flood.received.length >= n, 15_000, 'every answer')
        const probe = await probeWhile(() => client.service(Calc).add({ a: 2, b: 2 }, { timeoutMs: 3000 }), done)
        await done
        const ms = performance.now() - started
        const ids = new Set(flood.received.map((e) => e.id))
        const replies = flood.received.filter((e) => e.kind === Kind.Reply).length
        report(`${n} REQUESTs in one frame over ${transport}`, { ms, answers: flood.received.length, replies, probeCalls: probe.calls, probeWorstMs: probe.worstMs })
        expect(flood.received).to.have.length(n)
        expect(ids.size).to.equal(n)
        expect(probe.failures).to.deep.equal([])
      } finally {
        flood.stop()
        await client.close()
        await server.close({ timeoutMs: 200 })
      }
    })
  }
})
