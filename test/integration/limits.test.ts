import { expect } from 'chai'
import { RpcClient, RpcError, RpcServer } from '../../lib/index.js'
import { Calc, calcHandlers } from '../helpers/calc.js'
import { rejection } from '../helpers/endpoints.js'

describe('server bounds: handlers at once and the queue behind them', function () {
  this.timeout(10_000)

  it('fails calls past maxConcurrent + maxQueued fast with RESOURCE_EXHAUSTED, and serves the rest', async () => {
    const server = new RpcServer({ maxConcurrent: 2, maxQueued: 3 }).implement(Calc, calcHandlers())
    const [endpoint] = await server.bind('tcp://127.0.0.1:*')
    const client = new RpcClient({ connect: endpoint!, timeoutMs: 5000 })
    try {
      const calls = Array.from({ length: 12 }, () =>
        client.service(Calc).slow({ ms: 200 }).then(
          () => 'ok',
          (err: RpcError) => err.code,
        ),
      )
      const outcomes = await Promise.all(calls)
      expect(outcomes.filter((o) => o === 'ok')).to.have.length(5)
      expect(outcomes.filter((o) => o === 'RESOURCE_EXHAUSTED')).to.have.length(7)
      expect(server.stats.calls.rejectedBusy).to.equal(7)
    } finally {
      await client.close()
      await server.close()
    }
  })

  it('never starts a queued call whose deadline passed while it waited', async () => {
    const server = new RpcServer({ maxConcurrent: 1, maxQueued: 10 }).implement(Calc, calcHandlers())
    const [endpoint] = await server.bind('tcp://127.0.0.1:*')
    const client = new RpcClient({ connect: endpoint!, timeoutMs: 5000 })
    try {
      const first = client.service(Calc).slow({ ms: 300 })
      const queued = client.service(Calc).add({ a: 1, b: 1 }, { timeoutMs: 100 })
      expect(await rejection(queued)).to.have.property('code', 'DEADLINE_EXCEEDED')
      await first
      expect(server.stats.calls.late).to.equal(1)
      expect(server.stats.calls.completed).to.equal(1)
    } finally {
      await client.close()
      await server.close()
    }
  })
})

describe('maximum message size', function () {
  this.timeout(10_000)

  it('refuses to send a request over the client maxMessageSize with RESOURCE_EXHAUSTED', async () => {
    const server = new RpcServer().implement(Calc, calcHandlers())
    const [endpoint] = await server.bind('tcp://127.0.0.1:*')
    // 64 KiB is the smallest maxMessageSize a client takes (the protocol's cap on joined frames).
    const client = new RpcClient({ connect: endpoint!, maxMessageSize: 65536 })
    try {
      const err = await rejection(client.service(Calc).echo({ data: 'x'.repeat(70_000) }))
      expect(err).to.be.instanceOf(RpcError).with.property('code', 'RESOURCE_EXHAUSTED')
      expect((err as RpcError).message).to.match(/exceeds maxMessageSize 65536/)
      expect(await client.service(Calc).echo({ data: 'small' })).to.equal('small')
    } finally {
      await client.close()
      await server.close()
    }
  })

  it('answers RESOURCE_EXHAUSTED instead of a reply over the server maxMessageSize', async () => {
    const server = new RpcServer({ maxMessageSize: 64 * 1024 }).implement(Calc, calcHandlers())
    const [endpoint] = await server.bind('tcp://127.0.0.1:*')
    const client = new RpcClient({ connect: endpoint! })
    try {
      const err = await rejection(client.service(Calc).repeat({ s: 'ab', n: 40_000 }))
      expect(err).to.be.instanceOf(RpcError).with.property('code', 'RESOURCE_EXHAUSTED')
      expect(server.stats.input[0]!.oversizedReplies).to.equal(1)
      expect(await client.service(Calc).repeat({ s: 'ab', n: 10 })).to.equal('ab'.repeat(10))
    } finally {
      await client.close()
      await server.close()
    }
  })

  it('a message over the server socket limit costs its sender the connection: calls end UNAVAILABLE, the server serves on', async () => {
    const server = new RpcServer({ maxMessageSize: 64 * 1024 }).implement(Calc, calcHandlers())
    const [endpoint] = await server.bind('tcp://127.0.0.1:*')
    const big = new RpcClient({ connect: endpoint!, timeoutMs: 3000 })
    const good = new RpcClient({ connect: endpoint! })
    try {
      const err = await rejection(big.service(Calc).echo({ data: 'x'.repeat(100_000) }))
      expect(err).to.be.instanceOf(RpcError).with.property('code', 'UNAVAILABLE')
      expect(await good.service(Calc).add({ a: 2, b: 2 })).to.equal(4)
    } finally {
      await big.close()
      await good.close()
      await server.close()
    }
  })
})

describe('joined frames', function () {
  this.timeout(10_000)

  it('2,000 calls of 250 bytes joined by a client with the default limit all reach a server whose limit is 64 KiB', async () => {
    // The protocol caps joined frames at 64 KiB, the smallest maxMessageSize allowed: before, the
    // sender joined up to 256 KiB, the server's libzmq dropped the connection, and every call failed UNAVAILABLE.
    const server = new RpcServer({ maxMessageSize: 64 * 1024, maxQueued: 4096, maxPerPeer: 4096 }).implement(Calc, calcHandlers())
    const [endpoint] = await server.bind('tcp://127.0.0.1:*')
    const client = new RpcClient({ connect: endpoint!, timeoutMs: 8000 })
    try {
      const data = 'z'.repeat(250)
      const results = await Promise.all(Array.from({ length: 2000 }, () => client.service(Calc).echo({ data })))
      expect(results.every((r) => r === data)).to.equal(true)
      expect(client.stats[0]!.connectionsLost).to.equal(0)
    } finally {
      await client.close()
      await server.close()
    }
  })
})
