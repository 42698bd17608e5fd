import { expect } from 'chai'
import { Router } from 'zeromq'
import { RpcClient, RpcError, RpcServer } from '../../lib/index.js'
import { encodeReply, parseFrame } from '../../lib/codec/envelope.js'
import { encodeCbor } from '../../lib/codec/cbor.js'
import { Calc, calcHandlers, type CalcProbe } from '../helpers/calc.js'
import { TRANSPORTS, bindAddress, rejection, sleep, until } from '../helpers/endpoints.js'

for (const transport of TRANSPORTS) describe(`deadlines and cancellation over ${transport}`, function () {
  this.timeout(10_000)
  let server: RpcServer
  let client: RpcClient
  let probe: CalcProbe

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

  it('rejects with DEADLINE_EXCEEDED at the deadline and aborts ctx.signal on the server', async () => {
    const started = Date.now()
    const err = await rejection(client.service(Calc).slow({ ms: 5000 }, { timeoutMs: 150 }))
    expect(err).to.be.instanceOf(RpcError).with.property('code', 'DEADLINE_EXCEEDED')
    expect(Date.now() - started).to.be.within(140, 1500)
    await until(() => probe.aborted.length === 1, 2000, 'the server-side abort')
    expect(probe.aborted[0]).to.be.instanceOf(RpcError)
    expect((probe.aborted[0] as RpcError).code).to.equal('DEADLINE_EXCEEDED')
    expect(server.stats.calls.cancelled).to.equal(0)
  })

  it("uses the client's default deadline when the call gives none", async () => {
    const short = new RpcClient({ connect: (await server.bind('tcp://127.0.0.1:*'))[0]!, timeoutMs: 100 })
    try {
      const err = await rejection(short.service(Calc).slow({ ms: 5000 }))
      expect(err).to.be.instanceOf(RpcError).with.property('code', 'DEADLINE_EXCEEDED')
    } finally {
      await short.close()
    }
  })

  it("cancels through the caller's signal: CANCELLED here, ctx.signal aborted there", async () => {
    const controller = new AbortController()
    const call = client.service(Calc).slow({ ms: 5000 }, { signal: controller.signal })
    await until(() => probe.started === 1, 2000, 'the handler to start')
    controller.abort()
    const err = await rejection(call)
    expect(err).to.be.instanceOf(RpcError).with.property('code', 'CANCELLED')
    await until(() => probe.aborted.length === 1, 2000, 'the server-side abort')
    expect((probe.aborted[0] as RpcError).code).to.equal('CANCELLED')
    expect(server.stats.calls.cancelled).to.equal(1)
  })

  it('rejects at once when the signal is already aborted, without sending', async () => {
    const err = await rejection(client.service(Calc).add({ a: 1, b: 1 }, { signal: AbortSignal.abort() }))
    expect(err).to.be.instanceOf(RpcError).with.property('code', 'CANCELLED')
    expect(server.stats.calls.received).to.equal(0)
  })

  it('works with AbortSignal.timeout as the signal', async () => {
    const err = await rejection(client.service(Calc).slow({ ms: 5000 }, { signal: AbortSignal.timeout(50), timeoutMs: 2000 }))
    expect(err).to.be.instanceOf(RpcError).with.property('code', 'CANCELLED')
  })

  it('refuses a timeout that is not a positive number', async () => {
    for (const timeoutMs of [0, -1, Number.NaN, Infinity]) {
      const err = await rejection(client.service(Calc).add({ a: 1, b: 1 }, { timeoutMs }))
      expect(err, String(timeoutMs)).to.be.instanceOf(RpcError).with.property('code', 'INVALID_ARGUMENT')
    }
  })
})

for (const transport of ['tcp', 'ipc'] as const) describe(`deadlines against a peer that misbehaves over ${transport}`, function () {
  this.timeout(10_000)
  let peer: Router
  let endpoint: string

  beforeEach(async () => {
    peer = new Router({ linger: 0 })
    await peer.bind(bindAddress(transport))
    endpoint = peer.lastEndpoint!
  })
  afterEach(() => peer.close())

  it('ends the call with DEADLINE_EXCEEDED on time when the server never answers', async () => {
    const client = new RpcClient({ connect: endpoint })
    try {
      const started = Date.now()
      const err = await rejection(client.call('calc', 'add', encodeCbor({ a: 1, b: 2 }), { timeoutMs: 200 }))
      expect(err).to.be.instanceOf(RpcError).with.property('code', 'DEADLINE_EXCEEDED')
      expect(Date.now() - started).to.be.within(190, 1500)
      expect(client.inFlight).to.equal(0)
    } finally {
      await client.close()
    }
  })

  it('drops a reply that comes after the deadline quietly, and counts it', async () => {
    const client = new RpcClient({ connect: endpoint })
    try {
      const call = client.call('calc', 'add', encodeCbor({ a: 1, b: 2 }), { timeoutMs: 100 })
      const [from, frame] = await peer.receive()
      const [request] = parseFrame(frame!)
      expect(await rejection(call)).to.have.property('code', 'DEADLINE_EXCEEDED')
      await peer.send([from!, encodeReply((request as { id: number }).id, encodeCbor(3))])
      await until(() => client.stats[0]!.lateReplies === 1, 2000, 'the late reply')
    } finally {
      await client.close()
    }
  })

  it('fails calls in flight with UNAVAILABLE as soon as the connection drops, not at their deadline', async () => {
    const client = new RpcClient({ connect: endpoint })
    try {
      const call = client.call('calc', 'add', encodeCbor({ a: 1, b: 2 }), { timeoutMs: 8000 })
      await peer.receive()
      const started = Date.now()
      peer.close()
      const err = await rejection(call)
      expect(err).to.be.instanceOf(RpcError).with.property('code', 'UNAVAILABLE')
      expect(Date.now() - started).to.be.below(4000)
    } finally {
      await client.close()
      await sleep(0)
    }
  })
})
