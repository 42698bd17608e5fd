import { expect } from 'chai'
import { RpcClient, RpcError, RpcServer } from '../../lib/index.js'
import { Calc, calcHandlers, type CalcProbe } from '../helpers/calc.js'
import { TRANSPORTS, bindAddress, rejection, until } from '../helpers/endpoints.js'

for (const transport of TRANSPORTS) describe(`closing over ${transport}`, function () {
  this.timeout(10_000)
  let probe: CalcProbe
  let server: RpcServer
  let client: RpcClient

  beforeEach(async () => {
    probe = { aborted: [], started: 0 }
    server = new RpcServer().implement(Calc, calcHandlers(probe))
    const [endpoint] = await server.bind(bindAddress(transport))
    client = new RpcClient({ connect: endpoint!, timeoutMs: 5000 })
  })
  afterEach(async () => {
    await client.close()
    await server.close()
  })

  it('server.close() lets running calls finish within its timeout', async () => {
    const call = client.service(Calc).slow({ ms: 200 })
    await until(() => probe.started === 1, 2000, 'the handler to start')
    await server.close({ timeoutMs: 2000 })
    expect(await call).to.equal(null)
  })

  it('server.close() answers new calls UNAVAILABLE while it drains', async () => {
    const running = client.service(Calc).slow({ ms: 300 })
    await until(() => probe.started === 1, 2000, 'the handler to start')
    const closing = server.close({ timeoutMs: 2000 })
    const err = await rejection(client.service(Calc).add({ a: 1, b: 1 }))
    expect(err).to.be.instanceOf(RpcError).with.property('code', 'UNAVAILABLE')
    await closing
    expect(await running).to.equal(null)
  })

  it('server.close() fails calls still running at its timeout with UNAVAILABLE and aborts their signal', async () => {
    const call = client.service(Calc).slow({ ms: 5000 })
    await until(() => probe.started === 1, 2000, 'the handler to start')
    const started = Date.now()
    await server.close({ timeoutMs: 100 })
    expect(Date.now() - started).to.be.below(2000)
    const err = await rejection(call)
    expect(err).to.be.instanceOf(RpcError).with.property('code', 'UNAVAILABLE')
    expect((probe.aborted[0] as RpcError).code).to.equal('UNAVAILABLE')
  })

  it('client.close() rejects pending calls with CANCELLED, and later calls too', async () => {
    const pending = [client.service(Calc).slow({ ms: 5000 }), client.service(Calc).slow({ ms: 5000 })]
    await client.close()
    for (const call of pending) expect(await rejection(call)).to.be.instanceOf(RpcError).with.property('code', 'CANCELLED')
    expect(await rejection(client.service(Calc).add({ a: 1, b: 1 }))).to.have.property('code', 'CANCELLED')
  })

  it('close() twice is harmless, and a closed client or server refuses new work with a clear code', async () => {
    await client.close()
    await client.close()
    await server.close()
    await server.close()
    expect(await rejection(client.service(Calc).add({ a: 1, b: 1 }))).to.be.instanceOf(RpcError).with.property('code', 'CANCELLED')
    expect(await rejection(server.bind('tcp://127.0.0.1:*'))).to.be.instanceOf(RpcError).with.property('code', 'UNAVAILABLE')
  })
})
