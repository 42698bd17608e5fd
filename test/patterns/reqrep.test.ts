import { expect } from 'chai'
import { Reply, Router } from 'zeromq'
import { setTimeout as sleep } from 'node:timers/promises'
import { LazyPirateClient, LazyPirateError, ReplyServer, main } from '../../patterns/reqrep.js'

const TIMEOUT_MS = 150
const b = (s: string): Buffer => Buffer.from(s)

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (err) {
    return err
  }
  throw new Error('expected a rejection')
}

describe('reqrep pattern', function () {
  describe('main() with drops and one server restart', function () {
    it('gets every reply through, using resends', async function () {
      const summary = await main({ requests: 8, timeoutMs: 200, dropEvery: 4, crashAt: 6 })
      expect(summary.ok).to.equal(8)
      expect(summary.failures).to.equal(0)
      expect(summary.restarts).to.equal(1)
      expect(summary.dropped).to.be.at.least(1)
      expect(summary.retries).to.be.at.least(summary.dropped + summary.restarts)
    })
  })

  describe('a server that never answers', function () {
    it('rejects with RETRIES_EXHAUSTED after exactly `retries` sends', async function () {
      // A ROUTER speaks to REQ like a REP, but can keep receiving without ever replying.
      const router = new Router({ linger: 0 })
      await router.bind('tcp://127.0.0.1:*')
      const endpoint = router.lastEndpoint ?? ''
      let seen = 0
      const counting = (async () => {
        for await (const _ of router) seen++
      })()
      const client = new LazyPirateClient({ endpoint, timeoutMs: TIMEOUT_MS, retries: 3 })
      const started = Date.now()
      const err = await rejection(client.request([b('ping')]))
      const elapsed = Date.now() - started
      await sleep(TIMEOUT_MS) // a fourth send would arrive in this window
      await client.close()
      router.close()
      await counting

      expect(err).to.be.instanceOf(LazyPirateError)
      const pirate = err as LazyPirateError
      expect(pirate.code).to.equal('RETRIES_EXHAUSTED')
      expect(pirate.tries).to.equal(3)
      expect(pirate.message).to.include(endpoint).and.to.include('3 tries')
      expect(seen).to.equal(3)
      expect(elapsed).to.be.at.least(3 * TIMEOUT_MS - 10)
      expect(elapsed).to.be.below(3 * TIMEOUT_MS + 2000)
      expect(client.stats).to.deep.equal({ requests: 1, replies: 0, retries: 2, failures: 1 })
    })
  })

  describe('a plain zeromq Reply peer that answers only the second send', function () {
    it('resolves with the second reply after one resend', async function () {
      const rep = new Reply({ linger: 0 })
      await rep.bind('tcp://127.0.0.1:*')
      const serving = (async () => {
        for (let n = 1; n <= 2; n++) {
          const [body] = await rep.receive()
          // The first reply comes after the client replaced its socket, so it is lost.
          if (n === 1) await sleep(TIMEOUT_MS * 1.5)
          await rep.send([b(`${String(body)}#${n}`)])
        }
      })()
      const client = new LazyPirateClient({ endpoint: rep.lastEndpoint ?? '', timeoutMs: TIMEOUT_MS })
      const reply = await client.request([b('hello')])
      await serving
      await client.close()
      rep.close()

      expect(reply.map(String)).to.deep.equal(['hello#2'])
      expect(client.stats.retries).to.equal(1)
    })
  })

  describe('a server restarted between two requests', function () {
    it('recovers on the new server at the same endpoint', async function () {
      const echo = (frames: Buffer[]): Buffer[] => frames
      const first = new ReplyServer(echo)
      const endpoint = await first.bind('tcp://127.0.0.1:*')
      const client = new LazyPirateClient({ endpoint, timeoutMs: TIMEOUT_MS, retries: 5 })
      expect((await client.request([b('one')])).map(String)).to.deep.equal(['one'])

      await first.close()
      const pending = client.request([b('two')])
      await sleep(TIMEOUT_MS * 1.5)
      let second: ReplyServer | undefined
      for (let i = 0; second === undefined; i++) {
        const candidate = new ReplyServer(echo)
        try {
          await candidate.bind(endpoint)
          second = candidate
        } catch (err) {
          await candidate.close()
          if (i > 50) throw err
          await sleep(20)
        }
      }
      const reply = await pending
      await client.close()
      await second.close()

      expect(reply.map(String)).to.deep.equal(['two'])
      expect(client.stats.retries).to.be.at.least(1)
      expect(client.stats.failures).to.equal(0)
    })
  })

  describe('concurrent requests on one client', function () {
    it('serializes them in call order without EBUSY', async function () {
      const order: string[] = []
      let inHandler = 0
      let maxInHandler = 0
      const server = new ReplyServer(async (frames) => {
        inHandler++
        maxInHandler = Math.max(maxInHandler, inHandler)
        order.push(String(frames[0]))
        await sleep(5)
        inHandler--
        return [b(`re:${String(frames[0])}`)]
      })
      const endpoint = await server.bind('tcp://127.0.0.1:*')
      const client = new LazyPirateClient({ endpoint, timeoutMs: 1000 })
      const names = ['a', 'b', 'c', 'd', 'e']
      const replies = await Promise.all(names.map((n) => client.request([b(n)])))
      await client.close()
      await server.close()

      expect(replies.map((r) => String(r[0]))).to.deep.equal(names.map((n) => `re:${n}`))
      expect(order).to.deep.equal(names)
      expect(maxInHandler).to.equal(1)
      expect(client.stats).to.deep.equal({ requests: 5, replies: 5, retries: 0, failures: 0 })
    })
  })

  describe('close() while requests wait', function () {
    it('rejects the request in flight and the queued ones with CLOSED, and later calls too', async function () {
      const router = new Router({ linger: 0 })
      await router.bind('tcp://127.0.0.1:*')
      const client = new LazyPirateClient({ endpoint: router.lastEndpoint ?? '', timeoutMs: 5000 })
      const inFlight = rejection(client.request([b('1')]))
      const queued = rejection(client.request([b('2')]))
      await sleep(50)
      const started = Date.now()
      await client.close()
      const errors = await Promise.all([inFlight, queued, rejection(client.request([b('3')]))])
      const elapsed = Date.now() - started
      router.close()

      for (const err of errors) {
        expect(err).to.be.instanceOf(LazyPirateError)
        expect((err as LazyPirateError).code).to.equal('CLOSED')
      }
      expect((errors[0] as LazyPirateError).tries).to.equal(1)
      expect(elapsed).to.be.below(5000)
    })
  })

  describe('a handler that throws', function () {
    it('still answers (an empty frame), so the REP stays in step', async function () {
      let calls = 0
      const server = new ReplyServer((frames) => {
        calls++
        if (calls === 1) throw new Error('boom')
        return frames
      })
      const endpoint = await server.bind('tcp://127.0.0.1:*')
      const client = new LazyPirateClient({ endpoint, timeoutMs: 1000 })
      const first = await client.request([b('x')])
      const second = await client.request([b('y')])
      await client.close()
      await server.close()

      expect(first.map((f) => f.length)).to.deep.equal([0])
      expect(second.map(String)).to.deep.equal(['y'])
    })
  })
})
