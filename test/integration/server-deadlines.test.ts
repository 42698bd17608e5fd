import { expect } from 'chai'
import { RpcServer } from '../../lib/index.js'
import { Kind } from '../../lib/codec/envelope.js'
import { Calc, calcHandlers, type CalcProbe } from '../helpers/calc.js'
import { TRANSPORTS, bindAddress, sleep, until } from '../helpers/endpoints.js'
import { rawPeer, slowRequest } from './server-raw-peer.js'

describe('server: budgets of 2^31 ms and more', function () {
  this.timeout(10_000)

  for (const transport of TRANSPORTS) {
    for (const timeoutMs of [2 ** 31, 2 ** 53 - 1]) {
      it(`does not abort the handler at once and answers the call, with timeoutMs ${timeoutMs} over ${transport}`, async () => {
        const probe: CalcProbe = { aborted: [], started: 0 }
        const server = new RpcServer().implement(Calc, calcHandlers(probe))
        const [endpoint] = await server.bind(bindAddress(transport))
        const peer = rawPeer(endpoint!)
        try {
          // slow() listens to its signal: an early abort would end it with DEADLINE_EXCEEDED.
          await peer.socket.send(slowRequest(1, 100, timeoutMs))
          await until(() => probe.started === 1, 2000, 'the handler to start')
          await sleep(50)
          expect(probe.aborted).to.deep.equal([])
          await until(() => peer.received.length === 1, 2000, 'the answer')
          expect(peer.received[0]).to.include({ kind: Kind.Reply, id: 1 })
        } finally {
          peer.stop()
          await server.close({ timeoutMs: 200 })
        }
      })
    }
  }
})
