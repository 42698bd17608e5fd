import { expect } from 'chai'
import { RpcClient, RpcError, RpcServer } from '../../lib/index.js'
import { encodeCbor } from '../../lib/codec/cbor.js'
import { Calc, calcHandlers, type CalcProbe } from '../helpers/calc.js'
import { TRANSPORTS, bindAddress, rejection } from '../helpers/endpoints.js'

for (const transport of TRANSPORTS) {
  describe(`typed calls over ${transport}`, function () {
    this.timeout(10_000)
    let server: RpcServer
    let client: RpcClient
    let probe: CalcProbe
    const handlerErrors: unknown[] = []

    before(async () => {
      probe = { aborted: [], started: 0 }
      server = new RpcServer({ onHandlerError: (err) => handlerErrors.push(err) }).implement(Calc, calcHandlers(probe))
      const [endpoint] = await server.bind(bindAddress(transport))
      client = new RpcClient({ connect: endpoint!, timeoutMs: 5000 })
    })
    after(async () => {
      await client.close()
      await server.close()
    })

    it('returns typed results', async () => {
      const calc = client.service(Calc)
      const sum: number = await calc.add({ a: 1, b: 2 })
      expect(sum).to.equal(3)
      expect(await calc.echo({ data: 'héllo ✓' })).to.equal('héllo ✓')
    })

    it('passes metadata to ctx.metadata', async () => {
      expect(await client.service(Calc).meta({}, { metadata: { tenant: 'a', trace: '42' } })).to.deep.equal({ tenant: 'a', trace: '42' })
    })

    it('rejects wrong params on the client with INVALID_ARGUMENT before sending', async () => {
      const err = await rejection(client.service(Calc).add({ a: 'x' as unknown as number, b: 2 }))
      expect(err).to.be.instanceOf(RpcError).with.property('code', 'INVALID_ARGUMENT')
      expect((err as RpcError).details).to.deep.equal([{ path: '/a', message: 'must be number' }])
    })

    it('rejects wrong params on the server with INVALID_ARGUMENT and TypeBox paths in details', async () => {
      const unchecked = new RpcClient({ connect: (await endpointOf(server, transport)) ?? '', validateParams: false })
      try {
        const err = await rejection(unchecked.service(Calc).add({ b: 'two' } as never))
        expect(err).to.be.instanceOf(RpcError).with.property('code', 'INVALID_ARGUMENT')
        const paths = ((err as RpcError).details as Array<{ path: string }>).map((d) => d.path).sort()
        expect(paths).to.deep.equal(['', '/b'])
      } finally {
        await unchecked.close()
      }
    })

    it('answers INTERNAL when a result does not match its schema', async () => {
      const err = await rejection(client.service(Calc).lie({}))
      expect(err).to.be.instanceOf(RpcError).with.property('code', 'INTERNAL')
      expect((err as RpcError).message).to.match(/does not match its schema/)
    })

    it('answers UNIMPLEMENTED for an unknown method or service', async () => {
      const params = encodeCbor({})
      for (const [service, method] of [['calc', 'nope'], ['nope', 'add']] as const) {
        const err = await rejection(client.call(service, method, params))
        expect(err).to.be.instanceOf(RpcError).with.property('code', 'UNIMPLEMENTED')
      }
    })

    it("passes a handler's RpcError through with its code and details", async () => {
      const err = await rejection(client.service(Calc).fail({ how: 'rpc' }))
      expect(err).to.be.instanceOf(RpcError).and.include({ code: 'NOT_FOUND', message: 'no such thing' })
      expect((err as RpcError).details).to.deep.equal({ what: 'thing' })
    })

    it('turns any other throw into INTERNAL without the server-side message or stack', async () => {
      const err = (await rejection(client.service(Calc).fail({ how: 'plain' }))) as RpcError
      expect(err.code).to.equal('INTERNAL')
      expect(err.message).not.to.match(/secret|app\.js/)
      expect(String(err.stack)).not.to.match(/secret|app\.js/)
      expect(handlerErrors.some((e) => /secret/.test(String(e)))).to.equal(true)
    })

    it('keeps 10 000 calls in flight on one client and matches every answer to its caller', async function () {
      this.timeout(20_000)
      const calc = client.service(Calc)
      const payloads = Array.from({ length: 10_000 }, (_, i) => `${i}:`.padEnd(16 + (i % 200), String.fromCharCode(97 + (i % 26))))
      const results = await Promise.all(payloads.map((data) => calc.echo({ data })))
      const wrong = results.filter((r, i) => r !== payloads[i]).length
      expect(wrong).to.equal(0)
      expect(client.inFlight).to.equal(0)
    })

    it('keeps 4 KiB payloads intact with 2 000 in flight (buffers are never reused under the socket)', async function () {
      this.timeout(20_000)
      const calc = client.service(Calc)
      const payloads = Array.from({ length: 2000 }, (_, i) => `${i}|`.padEnd(4096, String.fromCharCode(65 + (i % 50))))
      const results = await Promise.all(payloads.map((data) => calc.echo({ data })))
      expect(results.filter((r, i) => r !== payloads[i]).length).to.equal(0)
    })
  })
}

async function endpointOf(server: RpcServer, transport: string): Promise<string | undefined> {
  // A second endpoint on the same server, so a test can use its own client.
  const [endpoint] = await server.bind(bindAddress(transport as 'tcp'))
  return endpoint
}
