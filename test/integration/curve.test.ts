/**
 * CURVE (docs/security.md): servers and brokers that let in only the clients they know. A client that
 * is not allowed, one without CURVE, and one with the wrong server key all fail fast; refusals are
 * counted; an allow file is read again when it changes.
 */
import { expect } from 'chai'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Type } from 'typebox'
import { Dealer } from 'zeromq'
import { Broker, Publisher, RpcClient, RpcError, RpcServer, Subscriber, TopicProxy, curveKeyPair, defineService, defineTopic, waitForFlow, type CallContext } from '../../lib/index.js'
import { decodeCbor, encodeCbor } from '../../lib/codec/cbor.js'
import { encodeAuth, encodeRequest, parseFrame } from '../../lib/codec/envelope.js'
import { Calc, calcHandlers } from '../helpers/calc.js'
import { keyProof, warnIfExposed, z85Decode } from '../../lib/transport/curve.js'
import { rejection, sleep, until } from '../helpers/endpoints.js'

const server = curveKeyPair()
const alice = curveKeyPair()
const mallory = curveKeyPair()
const bob = curveKeyPair()

describe('CURVE security', function () {
  this.timeout(15_000)
  const closers: Array<() => Promise<unknown>> = []
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close()
  })

  async function calcServer(allow?: readonly string[] | { file: string }, onRefused?: (key: string) => void): Promise<{ srv: RpcServer; endpoint: string }> {
    const srv = new RpcServer({ curve: { ...server, ...(allow !== undefined && { allow }) }, ...(onRefused !== undefined && { onRefused }) }).implement(Calc, calcHandlers())
    const [endpoint] = (await srv.bind('tcp://127.0.0.1:*')) as [string]
    closers.push(() => srv.close({ timeoutMs: 200 }))
    return { srv, endpoint }
  }
  function client(endpoint: string, curve?: { serverKey: string; publicKey: string; secretKey: string }): RpcClient {
    const c = new RpcClient({ connect: endpoint, timeoutMs: 10_000, ...(curve !== undefined && { curve }) })
    closers.push(() => c.close())
    return c
  }

  it('serves an allowed client; refuses another with UNAUTHENTICATED within seconds, counted and reported', async () => {
    const refused: string[] = []
    const { srv, endpoint } = await calcServer([alice.publicKey], (key) => refused.push(key))
    expect(await client(endpoint, { serverKey: server.publicKey, ...alice }).service(Calc).add({ a: 1, b: 2 })).to.equal(3)
    const started = Date.now()
    const err = await rejection(client(endpoint, { serverKey: server.publicKey, ...mallory }).service(Calc).add({ a: 1, b: 2 }))
    expect(err).to.be.instanceOf(RpcError).with.property('code', 'UNAUTHENTICATED')
    expect((err as RpcError).message).to.match(/not allowed/)
    expect(Date.now() - started).to.be.lessThan(3000)
    expect(refused).to.include(mallory.publicKey)
    expect(srv.stats.auth).to.deep.include({ accepted: 1, allowed: 1 })
    expect(srv.stats.auth!.refused).to.be.at.least(1)
  })

  it('a client without CURVE against a CURVE server gets UNAUTHENTICATED at once, not a wait to its deadline', async () => {
    const { endpoint } = await calcServer()
    const started = Date.now()
    const err = await rejection(client(endpoint).service(Calc).add({ a: 1, b: 2 }))
    expect(err).to.be.instanceOf(RpcError).with.property('code', 'UNAUTHENTICATED')
    expect((err as RpcError).message).to.match(/one side uses CURVE and the other does not/)
    expect(Date.now() - started).to.be.lessThan(3000)
  })

  it('a client with the wrong server key fails fast (UNAUTHENTICATED or UNAVAILABLE), saying to check the key', async () => {
    const { endpoint } = await calcServer()
    const started = Date.now()
    const err = await rejection(client(endpoint, { serverKey: mallory.publicKey, ...alice }).service(Calc).add({ a: 1, b: 2 }))
    expect(err).to.be.instanceOf(RpcError)
    expect(['UNAUTHENTICATED', 'UNAVAILABLE']).to.include((err as RpcError).code)
    expect((err as RpcError).message).to.match(/serverKey/)
    expect(Date.now() - started).to.be.lessThan(3000)
  })

  it('without an allow list, any client that knows the server key gets in', async () => {
    const { endpoint } = await calcServer()
    expect(await client(endpoint, { serverKey: server.publicKey, ...mallory }).service(Calc).add({ a: 2, b: 2 })).to.equal(4)
  })

  it('reads an allow file, and again when it changes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'zrpc-allow-'))
    closers.push(() => rm(dir, { recursive: true, force: true }))
    const file = join(dir, 'clients.keys')
    await writeFile(file, `# who may call\n${alice.publicKey}\n`)
    const { srv, endpoint } = await calcServer({ file })
    const asMallory = { serverKey: server.publicKey, ...mallory }
    expect(await rejection(client(endpoint, asMallory).service(Calc).add({ a: 1, b: 1 }))).to.have.property('code', 'UNAUTHENTICATED')
    await writeFile(file, `${alice.publicKey}\n${mallory.publicKey}  # added\n`)
    await until(() => srv.stats.auth?.allowed === 2, 5000, 'the file read again')
    expect(await client(endpoint, asMallory).service(Calc).add({ a: 1, b: 1 })).to.equal(2)
  })

  it('warns once, and only for an address other hosts can reach, when a socket binds without CURVE', async () => {
    const warnings: string[] = []
    const onWarning = (w: Error & { code?: string }): void => void (w.code === 'ZRPC_PLAINTEXT' && warnings.push(w.message))
    process.on('warning', onWarning)
    try {
      warnIfExposed('tcp://127.0.0.1:5555', undefined)
      warnIfExposed('ipc:///tmp/x.sock', undefined)
      warnIfExposed('tcp://10.1.2.3:5555', { ...server })
      warnIfExposed('tcp://10.1.2.3:5555', undefined)
      warnIfExposed('tcp://[2001:db8::1]:5555', undefined)
      await new Promise((resolve) => setImmediate(resolve))
      expect(warnings).to.have.length(1)
      expect(warnings[0]).to.include('tcp://10.1.2.3:5555 is bound without CURVE')
    } finally {
      process.off('warning', onWarning)
    }
  })

  it('refuses bad keys at construction, before any socket exists', () => {
    expect(() => new RpcServer({ curve: { publicKey: 'short', secretKey: server.secretKey } })).to.throw(TypeError, /publicKey must be a 40-character Z85 key/)
    expect(() => new RpcClient({ connect: 'tcp://127.0.0.1:1', curve: { publicKey: alice.publicKey, secretKey: alice.secretKey } as never })).to.throw(TypeError, /serverKey/)
    expect(() => new Broker({ curve: { ...server, allow: ['nope'] } })).to.throw(TypeError, /curve.allow/)
  })

  it('a broker with CURVE lets in only the workers and clients it allows', async () => {
    const brokerKeys = curveKeyPair()
    const worker = curveKeyPair()
    const broker = new Broker({ heartbeatMs: 200, liveness: 5, curve: { ...brokerKeys, allow: [worker.publicKey, alice.publicKey] } })
    const [endpoint] = (await broker.bind('tcp://127.0.0.1:*')) as [string]
    closers.push(() => broker.close())
    const srv = new RpcServer().implement(Calc, calcHandlers())
    closers.push(() => srv.close({ timeoutMs: 200 }))
    await srv.connectBroker(endpoint, { heartbeatMs: 200, curve: { serverKey: brokerKeys.publicKey, ...worker } })
    await until(() => broker.stats().workers === 1, 5000, 'the worker')
    const good = new RpcClient({ broker: endpoint, timeoutMs: 5000, curve: { serverKey: brokerKeys.publicKey, ...alice } })
    const bad = new RpcClient({ broker: endpoint, timeoutMs: 5000, curve: { serverKey: brokerKeys.publicKey, ...mallory } })
    closers.push(() => good.close(), () => bad.close())
    expect(await good.service(Calc).add({ a: 20, b: 22 })).to.equal(42)
    expect(await rejection(bad.service(Calc).add({ a: 1, b: 1 }))).to.have.property('code', 'UNAUTHENTICATED')
    expect(broker.stats().auth!.refused).to.be.at.least(1)
  })

  it('typed topics over CURVE: an allowed subscriber gets messages, through a CURVE proxy too; one without CURVE gets none', async () => {
    const News = defineTopic('news', Type.String())
    const pubKeys = curveKeyPair()
    const proxyKeys = curveKeyPair()
    const pub = new Publisher({ curve: { ...pubKeys, allow: [alice.publicKey] } })
    closers.push(() => pub.close())
    const [endpoint] = (await pub.bind('tcp://127.0.0.1:*')) as [string]
    const sub = new Subscriber({ connect: endpoint, curve: { serverKey: pubKeys.publicKey, ...alice } })
    const plain = new Subscriber({ connect: endpoint })
    closers.push(() => sub.close(), () => plain.close())
    const news = sub.subscribe(News)
    const unheard = plain.subscribe(News)
    await waitForFlow(pub, sub)
    await pub.publish(News, 'hello')
    expect((await news.next()).value?.data).to.equal('hello')
    let plainGot = false
    void unheard.next().then((r) => (plainGot = r.done !== true))
    await sleep(200)
    expect(plainGot).to.equal(false)

    // A proxy with CURVE on both sides: a publisher connects to it as a CURVE client, subscribers too.
    const proxy = new TopicProxy({ curve: { ...proxyKeys, allow: [bob.publicKey, alice.publicKey] } })
    closers.push(() => proxy.close())
    const { frontend, backend } = await proxy.bind('tcp://127.0.0.1:*', 'tcp://127.0.0.1:*')
    const viaProxy = new Publisher({ connect: frontend, curve: { serverKey: proxyKeys.publicKey, ...bob } })
    const downstream = new Subscriber({ connect: backend, curve: { serverKey: proxyKeys.publicKey, ...alice } })
    closers.push(() => viaProxy.close(), () => downstream.close())
    const relayed = downstream.subscribe(News)
    await waitForFlow(viaProxy, downstream)
    await viaProxy.publish(News, 'through the proxy')
    expect((await relayed.next()).value?.data).to.equal('through the proxy')
    expect(() => new Subscriber({ connect: backend, curve: { ...alice } as never })).to.throw(TypeError, /serverKey/)
  })

  it("a handler sees the caller's proven key as ctx.peer.publicKey, and can authorise per method (direct and through the broker)", async () => {
    const Vault = defineService('vault', {
      open: { params: Type.Object({}), result: Type.String() },
      whoami: { params: Type.Object({}), result: Type.String() },
    })
    const handlers = {
      // Only alice may open the vault.
      open: (_p: unknown, ctx: CallContext) => {
        if (ctx.peer.publicKey !== alice.publicKey) throw new RpcError('PERMISSION_DENIED', 'only alice may open the vault')
        return 'opened'
      },
      whoami: (_p: unknown, ctx: CallContext) => ctx.peer.publicKey ?? 'anonymous',
    }
    const srv = new RpcServer({ curve: { ...server, allow: [alice.publicKey, bob.publicKey] } }).implement(Vault, handlers)
    closers.push(() => srv.close({ timeoutMs: 200 }))
    const [endpoint] = (await srv.bind('tcp://127.0.0.1:*')) as [string]
    const asAlice = client(endpoint, { serverKey: server.publicKey, ...alice }).service(Vault)
    const asBob = client(endpoint, { serverKey: server.publicKey, ...bob }).service(Vault)
    expect(await asAlice.whoami({})).to.equal(alice.publicKey)
    expect(await asBob.whoami({})).to.equal(bob.publicKey)
    expect(await asAlice.open({})).to.equal('opened')
    expect(await rejection(asBob.open({}))).to.be.instanceOf(RpcError).with.property('code', 'PERMISSION_DENIED')

    // Through a broker: the worker sees the key the broker authenticated.
    const brokerKeys = curveKeyPair()
    const workerKeys = curveKeyPair()
    const broker = new Broker({ heartbeatMs: 200, liveness: 5, curve: { ...brokerKeys, allow: [alice.publicKey, bob.publicKey, workerKeys.publicKey] } })
    closers.push(() => broker.close())
    const [brokerEndpoint] = (await broker.bind('tcp://127.0.0.1:*')) as [string]
    const worker = new RpcServer().implement(Vault, handlers)
    closers.push(() => worker.close({ timeoutMs: 200 }))
    await worker.connectBroker(brokerEndpoint, { heartbeatMs: 200, concurrency: 4, curve: { serverKey: brokerKeys.publicKey, ...workerKeys } })
    await until(() => broker.stats().workers === 1, 5000, 'the worker')
    const viaAlice = new RpcClient({ broker: brokerEndpoint, timeoutMs: 5000, curve: { serverKey: brokerKeys.publicKey, ...alice } })
    const viaBob = new RpcClient({ broker: brokerEndpoint, timeoutMs: 5000, curve: { serverKey: brokerKeys.publicKey, ...bob } })
    closers.push(() => viaAlice.close(), () => viaBob.close())
    expect(await viaAlice.service(Vault).whoami({})).to.equal(alice.publicKey)
    expect(await viaBob.service(Vault).whoami({})).to.equal(bob.publicKey)
    expect(await rejection(viaBob.service(Vault).open({}))).to.have.property('code', 'PERMISSION_DENIED')
    expect(await viaAlice.service(Vault).open({})).to.equal('opened')
  })

  it('a forged AUTH (another key, or a proof that does not hold) leaves the caller anonymous and is counted', async () => {
    const Who = defineService('who', { whoami: { params: Type.Object({}), result: Type.String() } })
    const srv = new RpcServer({ curve: { ...server } }).implement(Who, { whoami: (_p, ctx) => ctx.peer.publicKey ?? 'anonymous' })
    closers.push(() => srv.close({ timeoutMs: 200 }))
    const [endpoint] = (await srv.bind('tcp://127.0.0.1:*')) as [string]
    // Mallory connects with her own keys but claims alice's key, with the proof she can make (for her own key).
    const raw = new Dealer({ linger: 0, curveServerKey: server.publicKey, curvePublicKey: mallory.publicKey, curveSecretKey: mallory.secretKey })
    closers.push(async () => raw.close())
    raw.connect(endpoint)
    await raw.send(encodeAuth(z85Decode(alice.publicKey), keyProof(mallory, server.publicKey)))
    await raw.send(encodeRequest(1, 'who', 'whoami', 5000, null, encodeCbor({})))
    const [frame] = await raw.receive()
    const [env] = parseFrame(frame!)
    expect(decodeCbor((env as { result: Uint8Array }).result)).to.equal('anonymous')
    expect(srv.stats.input[0]!.badAuth).to.equal(1)
  })
})
