import { expect } from 'chai'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { RpcClient, RpcError, RpcServer, EndpointError } from '../../lib/index.js'
import { Calc, calcHandlers } from '../helpers/calc.js'
import { rejection, sleep, until } from '../helpers/endpoints.js'
import { deadEndpoint } from './client-raw-server.js'

describe('a client whose server cannot be reached (fail fast)', function () {
  this.timeout(8000)
  const closing: Array<{ close(): Promise<void> }> = []
  afterEach(async () => {
    await Promise.all(closing.splice(0).map((c) => c.close()))
  })

  it('fails a call to a port nothing listens on with UNAVAILABLE naming the endpoint, long before the default 30 s deadline', async () => {
    const endpoint = await deadEndpoint()
    const client = new RpcClient({ connect: endpoint })
    closing.push(client)
    const err = await rejection(client.service(Calc).add({ a: 1, b: 1 }))
    expect(err).to.be.instanceOf(RpcError).with.property('code', 'UNAVAILABLE')
    expect((err as RpcError).message).to.include(endpoint).and.include('waitForReady')
    expect((err as RpcError).details).to.deep.include({ notStarted: true, endpoint })
    expect(client.stats[0]).to.include({ state: 'failing', connected: false })
    expect(client.stats[0]!.failedFast).to.be.at.least(1)
  })

  it('fails a call to an unresolvable host with UNAVAILABLE at once', async () => {
    const client = new RpcClient({ connect: 'tcp://nonexistent.invalid:5555' })
    closing.push(client)
    const err = await rejection(client.service(Calc).add({ a: 1, b: 1 }))
    expect(err).to.be.instanceOf(RpcError).with.property('code', 'UNAVAILABLE')
    expect((err as RpcError).message).to.include('tcp://nonexistent.invalid:5555')
  })

  it('fails a call through a broker that cannot be reached with UNAVAILABLE at once', async () => {
    const endpoint = await deadEndpoint()
    const client = new RpcClient({ broker: endpoint })
    closing.push(client)
    const err = await rejection(client.service(Calc).add({ a: 1, b: 1 }))
    expect(err).to.be.instanceOf(RpcError).with.property('code', 'UNAVAILABLE')
    expect((err as RpcError).message).to.include(endpoint)
  })

  it('lets a waitForReady call wait until the server binds, then succeed', async () => {
    const endpoint = await deadEndpoint()
    const client = new RpcClient({ connect: endpoint, timeoutMs: 6000 })
    closing.push(client)
    const call = client.service(Calc).add({ a: 2, b: 3 }, { waitForReady: true })
    await until(() => client.stats[0]!.state === 'failing', 3000, 'the connection to fail')
    const server = new RpcServer().implement(Calc, calcHandlers())
    closing.push(server)
    await server.bind(endpoint)
    expect(await call).to.equal(5)
  })

  it('honours waitForReady set on the client for every call', async () => {
    const endpoint = await deadEndpoint()
    const client = new RpcClient({ connect: endpoint, timeoutMs: 6000, waitForReady: true })
    closing.push(client)
    const call = client.service(Calc).add({ a: 1, b: 1 })
    await sleep(300)
    const server = new RpcServer().implement(Calc, calcHandlers())
    closing.push(server)
    await server.bind(endpoint)
    expect(await call).to.equal(2)
  })

  it('ends a waitForReady call at its deadline with DEADLINE_EXCEEDED naming the endpoint', async () => {
    const endpoint = await deadEndpoint()
    const client = new RpcClient({ connect: endpoint })
    closing.push(client)
    const err = await rejection(client.service(Calc).add({ a: 1, b: 1 }, { waitForReady: true, timeoutMs: 200 }))
    expect(err).to.be.instanceOf(RpcError).with.property('code', 'DEADLINE_EXCEEDED')
    expect((err as RpcError).message).to.include(endpoint)
  })

  it('sends to a ready server when another of its endpoints is down, even for the first calls', async () => {
    const dead = await deadEndpoint()
    const server = new RpcServer().implement(Calc, calcHandlers())
    closing.push(server)
    const [live] = await server.bind('tcp://127.0.0.1:*')
    const client = new RpcClient({ connect: [dead, live!] })
    closing.push(client)
    // Issued at once: the dead channel's first attempt fails, and the call is retried on the live one.
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => client.service(Calc).add({ a: i, b: 0 })))
    expect(results).to.deep.equal(Array.from({ length: 20 }, (_, i) => i))
  })
})

describe('client options checked before any socket exists', function () {
  this.timeout(10_000)

  it('throws an EndpointError naming an endpoint without transport', () => {
    const err = (() => {
      try {
        new RpcClient({ connect: 'localhost:5555' })
      } catch (e) {
        return e
      }
      return undefined
    })()
    expect(err).to.be.instanceOf(EndpointError)
    expect((err as Error).message).to.include('"localhost:5555"').and.include('tcp://localhost:5555')
  })

  it('leaves no socket open when one of several endpoints is wrong: the process exits by itself', () => {
    const index = fileURLToPath(new URL('../../lib/index.js', import.meta.url))
    const script = `
      const { RpcClient } = await import(${JSON.stringify(index)})
      try { new RpcClient({ connect: ['tcp://127.0.0.1:5555', 'localhost:5555'] }) } catch (err) { console.log(err.name + ': ' + err.message) }
    `
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { timeout: 8000, encoding: 'utf8' })
    expect(child.error, 'the process did not exit by itself').to.equal(undefined)
    expect(child.stdout).to.match(/^EndpointError: .*"localhost:5555"/)
    expect(child.status).to.equal(0)
  })

  it('refuses a maxMessageSize under 64 KiB with a TypeError', () => {
    expect(() => new RpcClient({ connect: 'tcp://127.0.0.1:5555', maxMessageSize: 1024 })).to.throw(TypeError, /at least 65536/)
  })
})
