import { expect } from 'chai'
import { RpcClient, RpcError, RpcServer, defineService, type CallInfo } from '../../lib/index.js'
import { encodeCbor } from '../../lib/codec/cbor.js'
import { encodeError, encodeReply } from '../../lib/codec/envelope.js'
import { MAX_ATTEMPTS, retryPolicy, retryWaitsForReady } from '../../lib/rpc/retry.js'
import { Calc, calcHandlers, type CalcProbe } from '../helpers/calc.js'
import { TRANSPORTS, bindAddress, rejection, sleep, until } from '../helpers/endpoints.js'
import { RawServer, requestsIn } from './client-raw-server.js'
import { Type } from 'typebox'

describe('a client after a reply over its maxMessageSize', function () {
  this.timeout(10_000)

  it('fails the call UNAVAILABLE { connectionLost } at once, and a later call succeeds', async () => {
    let oversized = true
    const peer = await RawServer.start('tcp://127.0.0.1:*', async (from, [frame], raw) => {
      for (const request of requestsIn(frame)) {
        const result = oversized ? encodeCbor('x'.repeat(100_000)) : encodeCbor(request.id)
        await raw.send(from, encodeReply(request.id, result))
      }
    })
    const client = new RpcClient({ connect: peer.endpoint, maxMessageSize: 64 * 1024, timeoutMs: 8000 })
    try {
      const err = await rejection(client.call('calc', 'add', encodeCbor({ a: 1, b: 1 })))
      expect(err).to.be.instanceOf(RpcError).with.property('code', 'UNAVAILABLE')
      expect((err as RpcError).details).to.deep.equal({ connectionLost: true })
      oversized = false
      // Sent while the socket layer replaces the dead connection: it waits for it, within its deadline.
      const result = await client.call('calc', 'add', encodeCbor({ a: 1, b: 1 }), { timeoutMs: 3000 })
      expect(result.length).to.be.greaterThan(0)
      expect(client.stats[0]!.connectionsLost).to.equal(1)
      expect(client.stats[0]!.recoveries).to.be.at.least(1)
    } finally {
      await client.close()
      await peer.close()
    }
  })
})

for (const transport of TRANSPORTS) {
  describe(`budgets beyond setTimeout's range over ${transport}`, function () {
    this.timeout(10_000)

    it('a budget of 2^31 ms or more (up to 2^53-1) is not ended early: the call gets its reply', async () => {
      const budgets: number[] = []
      const peer = await RawServer.start(bindAddress(transport), async (from, [frame], raw) => {
        for (const request of requestsIn(frame)) {
          budgets.push(request.timeoutMs)
          await sleep(30)
          await raw.send(from, encodeReply(request.id, encodeCbor(7)))
        }
      })
      const client = new RpcClient({ connect: peer.endpoint, timeoutMs: Number.MAX_SAFE_INTEGER })
      try {
        expect(await client.service(Calc).add({ a: 3, b: 4 }, { timeoutMs: 2 ** 31 + 1000 })).to.equal(7)
        expect(await client.service(Calc).add({ a: 3, b: 4 })).to.equal(7)
        expect(budgets[0]).to.be.above(2 ** 31)
        expect(budgets[1]).to.be.above(2 ** 52).and.at.most(Number.MAX_SAFE_INTEGER)
      } finally {
        await client.close()
        await peer.close()
      }
    })
  })

  describe(`client.close() with calls pending over ${transport}`, function () {
    this.timeout(10_000)

    it("sends CANCEL first: the server's ctx.signal aborts with CANCELLED, the callers get CANCELLED", async () => {
      const probe: CalcProbe = { aborted: [], started: 0 }
      const server = new RpcServer().implement(Calc, calcHandlers(probe))
      const [endpoint] = await server.bind(bindAddress(transport))
      const client = new RpcClient({ connect: endpoint!, timeoutMs: 8000 })
      try {
        const calls = [client.service(Calc).slow({ ms: 8000 }), client.service(Calc).slow({ ms: 8000 })]
        await until(() => probe.started === 2, 3000, 'both handlers to start')
        await client.close()
        for (const call of calls) expect(await rejection(call)).to.be.instanceOf(RpcError).with.property('code', 'CANCELLED')
        await until(() => probe.aborted.length === 2, 3000, 'the server-side aborts')
        for (const reason of probe.aborted) expect(reason).to.be.instanceOf(RpcError).with.property('code', 'CANCELLED')
      } finally {
        await client.close()
        await server.close({ timeoutMs: 100 })
      }
    })
  })
}

describe('the retry table', () => {
  const error = (details?: unknown): RpcError => new RpcError('UNAVAILABLE', 'x', details)

  it('retries a call that never started elsewhere, whatever its idempotency; a lost one only when idempotent', () => {
    expect(retryPolicy(error({ notStarted: true }), false, true)).to.equal(true)
    expect(retryPolicy(new RpcError('RESOURCE_EXHAUSTED', 'busy', { notStarted: true }), false, true)).to.equal(true)
    // Nowhere else to go (one endpoint, all tried), or the broker itself refused: asking again would be refused again.
    expect(retryPolicy(error({ notStarted: true }), true, false)).to.equal(false)
    expect(retryPolicy(new RpcError('RESOURCE_EXHAUSTED', 'queue full', { notStarted: true, broker: true }), true, true)).to.equal(false)
    expect(retryPolicy(error({ workerLost: true }), true, true)).to.equal(true)
    expect(retryPolicy(error({ workerLost: true }), false, true)).to.equal(false)
    expect(retryPolicy(error({ connectionLost: true }), true, false)).to.equal(true)
    expect(retryPolicy(error({ connectionLost: true }), false, true)).to.equal(false)
    expect(retryPolicy(error(), true, true)).to.equal(false)
    expect(retryPolicy(new RpcError('INTERNAL', 'x', { connectionLost: true }), true, true)).to.equal(false)
    expect(retryPolicy(new Error('plain'), true, true)).to.equal(false)
    expect(MAX_ATTEMPTS).to.equal(3)
  })

  it('lets a retry after a lost connection or worker wait for the connection; a refused one fails fast', () => {
    expect(retryWaitsForReady(error({ connectionLost: true }))).to.equal(true)
    expect(retryWaitsForReady(error({ workerLost: true }))).to.equal(true)
    expect(retryWaitsForReady(error({ notStarted: true }))).to.equal(false)
    expect(retryWaitsForReady(error())).to.equal(false)
  })
})

describe('a call refused before it started', function () {
  this.timeout(10_000)
  const Store = defineService('calc', {
    add: { params: Type.Object({ a: Type.Number(), b: Type.Number() }), result: Type.Number() },
  })

  it('is retried on another server even when not idempotent, and not after other errors', async () => {
    let refused = 0
    // A server that is always busy: it refuses every call as never started.
    const busy = await RawServer.start('tcp://127.0.0.1:*', async (from, [frame], raw) => {
      for (const request of requestsIn(frame)) {
        refused++
        await raw.send(from, encodeError(request.id, 'UNAVAILABLE', 'busy', { notStarted: true }))
      }
    })
    const server = new RpcServer().implement(Calc, calcHandlers())
    const [live] = await server.bind('tcp://127.0.0.1:*')
    const client = new RpcClient({ connect: [busy.endpoint, live!], timeoutMs: 3000 })
    try {
      await until(() => client.stats.every((c) => c.connected), 3000, 'both connections')
      // 20 calls: the balancer picks each server about half the time, so the busy one is surely tried (6 missed it once in 64 runs).
      const infos: CallInfo[] = []
      for (let i = 0; i < 20; i++) {
        const info: CallInfo = {}
        infos.push(info)
        expect(await client.service(Store).add({ a: i, b: 1 }, { info })).to.equal(i + 1)
      }
      expect(refused).to.be.at.least(1)
      // Every call says where it was answered: always the live server, after one or two attempts.
      expect(infos.every((info) => info.endpoint === live)).to.equal(true)
      expect(infos.filter((info) => info.attempts === 2)).to.have.length(refused)
      // The same refusal without notStarted is final for a method that is not idempotent.
      busy.handler = async (from, [frame], raw) => {
        for (const request of requestsIn(frame)) await raw.send(from, encodeError(request.id, 'UNAVAILABLE', 'busy'))
      }
      const outcomes = await Promise.all(Array.from({ length: 6 }, () => client.service(Store).add({ a: 1, b: 1 }).then(String, (e: RpcError) => e.code)))
      expect(outcomes).to.include('UNAVAILABLE').and.include('2')
    } finally {
      await client.close()
      await busy.close()
      await server.close()
    }
  })

  it('is not retried once the caller aborted', async () => {
    const controller = new AbortController()
    let seen = 0
    const busy = await RawServer.start('tcp://127.0.0.1:*', async (from, [frame], raw) => {
      for (const request of requestsIn(frame)) {
        seen++
        controller.abort()
        await raw.send(from, encodeError(request.id, 'UNAVAILABLE', 'busy', { notStarted: true }))
      }
    })
    const client = new RpcClient({ connect: busy.endpoint, timeoutMs: 3000 })
    try {
      const err = await rejection(client.service(Store).add({ a: 1, b: 1 }, { signal: controller.signal }))
      expect(err).to.be.instanceOf(RpcError).with.property('code', 'CANCELLED')
      await sleep(50)
      expect(seen).to.equal(1)
    } finally {
      await client.close()
      await busy.close()
    }
  })
})

describe('errors at the API edge', function () {
  this.timeout(5000)

  it("carry the caller's stack, not only the receive loop's", async () => {
    const busy = await RawServer.start('tcp://127.0.0.1:*', async (from, [frame], raw) => {
      for (const request of requestsIn(frame)) await raw.send(from, encodeError(request.id, 'NOT_FOUND', 'nope'))
    })
    const client = new RpcClient({ connect: busy.endpoint, timeoutMs: 3000 })
    try {
      const err = await rejection(client.service(Calc).add({ a: 1, b: 1 }))
      expect(err).to.be.instanceOf(RpcError).with.property('code', 'NOT_FOUND')
      expect((err as Error).stack).to.include('client-recovery.test')
    } finally {
      await client.close()
      await busy.close()
    }
  })
})

describe('retries that go back to a place already tried', function () {
  it('wait a growing, jittered backoff first (a worker lost again and again through the broker)', async () => {
    const Store = defineService('store', { get: { params: Type.Object({ key: Type.String() }), result: Type.String(), idempotent: true } })
    const arrivals: number[] = []
    // A stand-in broker that reports every call's worker lost.
    const broker = await RawServer.start('tcp://127.0.0.1:*', async (from, frames, raw) => {
      const [empty, header, service, frame] = frames
      if (service?.toString() !== 'store') return
      for (const request of requestsIn(frame)) {
        arrivals.push(performance.now())
        await raw.send(from, empty!, header!, service, encodeError(request.id, 'UNAVAILABLE', 'worker lost', { workerLost: true }))
      }
    })
    const client = new RpcClient({ broker: broker.endpoint, timeoutMs: 10_000 })
    try {
      const info: CallInfo = {}
      const err = await rejection(client.service(Store).get({ key: 'k' }, { info }))
      expect(err).to.be.instanceOf(RpcError).with.property('details').that.deep.equals({ workerLost: true })
      expect(info.attempts).to.equal(MAX_ATTEMPTS)
      expect(arrivals).to.have.length(MAX_ATTEMPTS)
      // 25 ms × (0.5 to 1) before the second attempt, twice that before the third; timers never fire early.
      expect(arrivals[1]! - arrivals[0]!).to.be.at.least(12)
      expect(arrivals[2]! - arrivals[1]!).to.be.at.least(24)
    } finally {
      await client.close()
      await broker.close()
    }
  })
})
