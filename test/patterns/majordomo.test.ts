import { expect } from 'chai'
import { Dealer, Request, Router } from 'zeromq'
import {
  MajordomoBroker, MajordomoClient, MajordomoWorker, main,
} from '../../patterns/majordomo.js'
import type { BrokerOptions, QueuedRequest, WorkerInfo, WorkerLeftReason, WorkerOptions } from '../../patterns/majordomo.js'

/** Short heartbeat for the tests about heartbeats; the others use QUIET_HB so a loaded machine cannot expire a worker mid-test. */
const HB = 100
const QUIET_HB = 1000
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
const str = (frames: readonly Buffer[] | null | undefined) => (frames ? frames.map(String) : null)

async function until(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await sleep(5)
  }
}

/** Collects every message a raw socket receives, so a test can wait for one that matches. */
class Inbox {
  readonly messages: Buffer[][] = []
  private readonly done: Promise<void>
  constructor(private readonly socket: Dealer | Router | Request) {
    this.done = (async () => {
      try {
        for await (const msg of socket) this.messages.push(msg)
      } catch {
        // closed
      }
    })()
  }
  async next(match: (m: string[]) => boolean, timeoutMs = 2000): Promise<Buffer[]> {
    let found: Buffer[] | undefined
    await until(() => {
      const at = this.messages.findIndex((m) => match(m.map(String)))
      if (at >= 0) found = this.messages.splice(at, 1)[0]
      return found !== undefined
    }, timeoutMs)
    return found ?? []
  }
  async close(): Promise<void> {
    this.socket.close()
    await this.done
  }
}

const cmd = (code: number) => String.fromCharCode(code)

describe('patterns/majordomo', function () {
  this.timeout(5000)
  let cleanup: (() => unknown)[] = []
  afterEach(async () => {
    for (const fn of cleanup.reverse()) await fn()
    cleanup = []
  })

  async function startBroker(opts: BrokerOptions = {}, endpoint = 'tcp://127.0.0.1:*') {
    const broker = new MajordomoBroker({ heartbeatMs: QUIET_HB, ...opts })
    const joined: WorkerInfo[] = []
    const left: [WorkerInfo, WorkerLeftReason][] = []
    broker.on('worker-joined', (w) => joined.push(w))
    broker.on('worker-left', (w, why) => left.push([w, why]))
    const ep = await broker.bind(endpoint)
    cleanup.push(() => broker.close())
    return { broker, endpoint: ep, joined, left }
  }

  /** A worker that serves until closed; `handler` returns the reply body. */
  function startWorker(endpoint: string, service: string, handler: (body: Buffer[]) => unknown, opts: WorkerOptions = {}) {
    const worker = new MajordomoWorker(endpoint, service, { heartbeatMs: QUIET_HB, ...opts })
    const served = (async () => {
      for await (const req of worker) await req.reply((await handler(req.body)) as string[])
    })()
    cleanup.push(async () => {
      await worker.close()
      await served
    })
    return worker
  }

  function client(endpoint: string, timeoutMs = 1000) {
    const c = new MajordomoClient(endpoint, { timeoutMs, retries: 1 })
    cleanup.push(() => c.close())
    return c
  }

  function raw<T extends Dealer | Router | Request>(socket: T) {
    socket.linger = 0
    const inbox = new Inbox(socket)
    cleanup.push(() => inbox.close())
    return { socket, inbox }
  }

  describe('main() with small numbers', () => {
    it('answers every request, spreads them over the workers, and answers MMI 200/404/501', async () => {
      const summary = await main({ workers: 2, requests: 4, heartbeatMs: QUIET_HB })
      expect(summary.requests).to.equal(8)
      expect(summary.replies).to.equal(8)
      expect(summary.perWorker).to.have.length(2)
      expect(summary.perWorker.reduce((a, b) => a + b, 0)).to.equal(8)
      expect(summary.mmi).to.deep.equal({ echo: '200', missing: '404', unknown: '501' })
    })
  })

  describe('a service with several workers', () => {
    it('hands sequential requests to the least recently used worker', async () => {
      const { endpoint, joined } = await startBroker()
      for (const name of ['a', 'b', 'c']) {
        startWorker(endpoint, 'echo', () => [name])
        await until(() => joined.length === ['a', 'b', 'c'].indexOf(name) + 1)
      }
      const c = client(endpoint)
      const seen: string[] = []
      for (let i = 0; i < 6; i++) seen.push(String((await c.request('echo', 'x'))?.[0]))
      expect(seen).to.deep.equal(['a', 'b', 'c', 'a', 'b', 'c'])
    })

    it('serves pipelined requests on all workers at once, one request per worker at a time', async () => {
      const { broker, endpoint, joined } = await startBroker()
      const handled = [0, 0, 0, 0]
      let inFlight = 0
      let maxInFlight = 0
      handled.forEach((_, i) =>
        startWorker(endpoint, 'slow', async (body) => {
          handled[i] = (handled[i] ?? 0) + 1
          maxInFlight = Math.max(maxInFlight, ++inFlight)
          await sleep(30)
          inFlight--
          return body
        }),
      )
      await until(() => joined.length === 4)
      const c = client(endpoint)
      for (let i = 0; i < 8; i++) await c.send('slow', String(i))
      const replies: string[] = []
      for (let i = 0; i < 8; i++) replies.push(String((await c.receive())?.body[0]))
      expect(replies.sort()).to.deep.equal(['0', '1', '2', '3', '4', '5', '6', '7'])
      expect(handled).to.deep.equal([2, 2, 2, 2])
      expect(maxInFlight).to.equal(4)
      expect(broker.stats().services.slow).to.include({ workers: 4, idle: 4, queued: 0, requests: 8, replies: 8 })
    })
  })

  describe('MMI (RFC 8)', () => {
    it('answers 200 for a live service, 404 for an unknown one, 501 for other mmi.* names, replacing the last body frame', async () => {
      const { endpoint, joined } = await startBroker()
      startWorker(endpoint, 'echo', (b) => b)
      await until(() => joined.length === 1)
      const c = client(endpoint)
      expect(str(await c.request('mmi.service', 'echo'))).to.deep.equal(['200'])
      expect(str(await c.request('mmi.service', 'nope'))).to.deep.equal(['404'])
      expect(str(await c.request('mmi.service', ['keep', 'echo']))).to.deep.equal(['keep', '200'])
      expect(str(await c.request('mmi.foo', 'echo'))).to.deep.equal(['501'])
    })

    it('answers 404 once the only worker has died (expired by heartbeat)', async () => {
      const { broker, endpoint, joined, left } = await startBroker({ heartbeatMs: HB })
      const worker = new MajordomoWorker(endpoint, 'echo', { heartbeatMs: HB, sendDisconnectOnClose: false })
      await until(() => joined.length === 1)
      const c = client(endpoint)
      expect(str(await c.request('mmi.service', 'echo'))).to.deep.equal(['200'])
      await worker.close() // dies silently, like a crash
      await until(() => left.length === 1)
      expect(left[0]?.[1]).to.equal('expired')
      // A request waiting for the service keeps it known to the broker: still 404 without a live worker.
      await client(endpoint).send('echo', 'waiting')
      await until(() => broker.stats().services.echo?.queued === 1)
      expect(str(await c.request('mmi.service', 'echo'))).to.deep.equal(['404'])
    })
  })

  describe('heartbeats and worker expiry', () => {
    it('expires an idle worker that stops heartbeating', async () => {
      const { broker, endpoint, left } = await startBroker({ heartbeatMs: HB })
      const { socket } = raw(new Dealer())
      socket.connect(endpoint)
      await socket.send(['', 'MDPW01', cmd(1), 'echo'])
      await until(() => broker.stats().workers === 1)
      await until(() => left.length === 1)
      expect(left[0]?.[1]).to.equal('expired')
      expect(broker.stats().workers).to.equal(0)
      expect(broker.stats().services.echo).to.equal(undefined)
    })

    it('expires a busy worker that dies and requeues its request to a live worker', async () => {
      const lost: QueuedRequest[] = []
      const { broker, endpoint, left } = await startBroker({ heartbeatMs: HB, onWorkerLost: (req) => (lost.push(req), 'requeue') })
      const dead = raw(new Dealer())
      dead.socket.connect(endpoint)
      await dead.socket.send(['', 'MDPW01', cmd(1), 'echo'])
      await until(() => broker.stats().workers === 1)
      const c = client(endpoint, 3000)
      const reply = c.request('echo', 'job')
      const got = await dead.inbox.next((m) => m[2] === cmd(2))
      expect(got.map(String).slice(0, 3)).to.deep.equal(['', 'MDPW01', cmd(2)])
      expect(got.map(String).slice(4)).to.deep.equal(['', 'job'])
      await dead.socket.send(['', 'MDPW01', cmd(4)]) // beats while busy, as zrpc workers do on each request
      await dead.inbox.close() // then dies while busy, no DISCONNECT
      startWorker(endpoint, 'echo', (b) => ['done', ...b.map(String)], { heartbeatMs: HB })
      expect(str(await reply)).to.deep.equal(['done', 'job'])
      expect(left.map(([, why]) => why)).to.deep.equal(['expired'])
      expect(lost.map((r) => [r.service, String(r.body[0])])).to.deep.equal([['echo', 'job']])
      expect(broker.stats().workers).to.equal(1)
    })

    it('drops the lost request when onWorkerLost says drop, and reports it to onReject', async () => {
      const ref: { broker?: MajordomoBroker } = {}
      const started = await startBroker({
        heartbeatMs: HB,
        onWorkerLost: () => 'drop',
        onReject: (req, reason) => ref.broker?.sendToClient(req.clientId, req.service, ['error', reason]),
      })
      const broker = (ref.broker = started.broker)
      const dead = raw(new Dealer())
      dead.socket.connect(started.endpoint)
      await dead.socket.send(['', 'MDPW01', cmd(1), 'echo'])
      const c = client(started.endpoint, 3000)
      const reply = c.request('echo', 'job')
      await dead.inbox.next((m) => m[2] === cmd(2))
      await dead.socket.send(['', 'MDPW01', cmd(4)])
      await dead.inbox.close()
      expect(str(await reply)).to.deep.equal(['error', 'worker-lost'])
      expect(broker.stats().rejected['worker-lost']).to.equal(1)
    })

    it('does not expire a busy reference-style worker that is silent while it works, and forwards its late reply', async () => {
      const { endpoint, left } = await startBroker({ heartbeatMs: HB })
      const quiet = raw(new Dealer())
      quiet.socket.connect(endpoint)
      await quiet.socket.send(['', 'MDPW01', cmd(1), 'echo'])
      const c = client(endpoint, 5000)
      const reply = c.request('echo', 'long job')
      const got = await quiet.inbox.next((m) => m[2] === cmd(2))
      await sleep(HB * 3 * 3) // three liveness windows without a word, as the guide's worker in a long handler
      await quiet.socket.send(['', 'MDPW01', cmd(3), got[3]!, '', 'finished'])
      expect(str(await reply)).to.deep.equal(['finished'])
      expect(left).to.deep.equal([])
      await quiet.inbox.close()
    })

    it('keeps a worker whose handler runs for many heartbeat intervals', async () => {
      const { endpoint, joined, left } = await startBroker({ heartbeatMs: HB })
      startWorker(endpoint, 'slow', async (b) => (await sleep(HB * 5), b), { heartbeatMs: HB })
      await until(() => joined.length === 1)
      const c = client(endpoint, 3000)
      expect(str(await c.request('slow', 'long'))).to.deep.equal(['long'])
      expect(left).to.deep.equal([])
    })

    it('reconnects a worker to a broker restarted on the same endpoint', async () => {
      const first = await startBroker({ heartbeatMs: HB })
      const worker = startWorker(first.endpoint, 'echo', (b) => b, { heartbeatMs: HB })
      await until(() => first.joined.length === 1)
      await first.broker.close()
      let second: Awaited<ReturnType<typeof startBroker>> | undefined
      for (let i = 0; !second; i++) {
        try {
          second = await startBroker({ heartbeatMs: HB }, first.endpoint)
        } catch (err) {
          if (i > 50) throw err
          await sleep(20)
        }
      }
      const restarted = second
      await until(() => restarted.joined.length === 1)
      expect(worker.connects).to.equal(2)
      expect(str(await client(restarted.endpoint).request('echo', 'again'))).to.deep.equal(['again'])
    })
  })

  describe('DISCONNECT', () => {
    it('a worker told to disconnect reconnects at once on a new socket', async () => {
      const { broker, endpoint, joined, left } = await startBroker()
      const worker = startWorker(endpoint, 'echo', (b) => b)
      await until(() => joined.length === 1)
      expect(broker.disconnectWorker(joined[0]?.identity ?? '')).to.equal(true)
      await until(() => joined.length === 2, 500) // well before a 1 s heartbeat could notice
      expect(left.map(([, why]) => why)).to.deep.equal(['kicked'])
      expect(joined[1]?.identity).to.not.equal(joined[0]?.identity)
      expect(worker.connects).to.equal(2)
      expect(str(await client(endpoint).request('echo', 'x'))).to.deep.equal(['x'])
    })

    it('a worker that closes sends DISCONNECT and the broker forgets it at once', async () => {
      const { broker, endpoint, joined, left } = await startBroker()
      const worker = new MajordomoWorker(endpoint, 'echo')
      await until(() => joined.length === 1)
      await worker.close()
      await until(() => left.length === 1, 500)
      expect(left[0]?.[1]).to.equal('disconnected')
      expect(broker.stats().workers).to.equal(0)
    })

    it('answers a valid but unexpected command with DISCONNECT', async () => {
      const { broker, endpoint, left } = await startBroker()
      const disconnect = ['', 'MDPW01', cmd(5)]
      for (const frames of [
        ['', 'MDPW01', cmd(4)], // HEARTBEAT before READY
        ['', 'MDPW01', cmd(3), 'client', '', 'x'], // REPLY before READY
        ['', 'MDPW01', cmd(1), 'mmi.service'], // READY in the mmi namespace
      ]) {
        const peer = raw(new Dealer())
        peer.socket.connect(endpoint)
        await peer.socket.send(frames)
        expect((await peer.inbox.next(() => true)).map(String)).to.deep.equal(disconnect)
      }
      const twice = raw(new Dealer())
      twice.socket.connect(endpoint)
      await twice.socket.send(['', 'MDPW01', cmd(1), 'echo'])
      await twice.socket.send(['', 'MDPW01', cmd(1), 'echo'])
      expect((await twice.inbox.next((m) => m[2] === cmd(5))).map(String)).to.deep.equal(disconnect)
      expect(left.map(([w, why]) => [w.service, why])).to.deep.equal([['echo', 'protocol-error']])
      expect(broker.stats().workers).to.equal(0)
      expect(broker.stats().dropped['unexpected-command']).to.equal(3)
    })
  })
  describe('wire compatibility with the reference peers (frames of mdp.md)', () => {
    it('serves a raw REQ reference client through a raw DEALER reference worker, byte for byte', async () => {
      const { endpoint } = await startBroker({ heartbeatMs: HB })
      const worker = raw(new Dealer())
      worker.socket.connect(endpoint)
      await worker.socket.send(['', 'MDPW01', cmd(1), 'echo'])
      expect((await worker.inbox.next((m) => m[2] === cmd(4))).map(String)).to.deep.equal(['', 'MDPW01', cmd(4)])
      const refClient = raw(new Request())
      refClient.socket.connect(endpoint)
      await refClient.socket.send(['MDPC01', 'echo', 'hello', 'world'])
      const request = await worker.inbox.next((m) => m[2] === cmd(2))
      const address = request[3] ?? Buffer.alloc(0)
      expect(address.length).to.be.greaterThan(0)
      expect(request.map(String).slice(4)).to.deep.equal(['', 'hello', 'world'])
      await worker.socket.send(['', 'MDPW01', cmd(4)])
      await worker.socket.send(['', 'MDPW01', cmd(3), address, '', 'HELLO', 'WORLD'])
      expect((await refClient.inbox.next(() => true)).map(String)).to.deep.equal(['MDPC01', 'echo', 'HELLO', 'WORLD'])
    })

    it('our worker answers a long request on the same socket when the broker is silent while it works, as the reference broker is', async () => {
      const router = raw(new Router())
      await router.socket.bind('tcp://127.0.0.1:*')
      const endpoint = router.socket.lastEndpoint ?? ''
      const worker = startWorker(endpoint, 'slow', async (b) => (await sleep(HB * 3 * 3), ['done', ...b.map(String)]), { heartbeatMs: HB })
      const ready = await router.inbox.next((m) => m[3] === cmd(1))
      const workerId = ready[0] ?? Buffer.alloc(0)
      // The reference broker heartbeats idle workers only: after the REQUEST it says nothing at all.
      await router.socket.send([workerId, '', 'MDPW01', cmd(2), 'client-1', '', 'job'])
      const reply = await router.inbox.next((m) => m[3] === cmd(3), 3000)
      expect(reply[0]?.equals(workerId)).to.equal(true)
      expect(reply.map(String).slice(4)).to.deep.equal(['client-1', '', 'done', 'job'])
      expect(worker.connects).to.equal(1)
      await worker.close()
    })

    it('our worker and client work against a minimal reference-style broker (raw ROUTER)', async () => {
      const router = raw(new Router())
      await router.socket.bind('tcp://127.0.0.1:*')
      const endpoint = router.socket.lastEndpoint ?? ''
      const worker = startWorker(endpoint, 'echo', (b) => ['re', ...b.map(String)], { heartbeatMs: HB, liveness: 20 })
      const ready = await router.inbox.next((m) => m[3] === cmd(1))
      const workerId = ready[0] ?? Buffer.alloc(0)
      expect(ready.map(String).slice(1)).to.deep.equal(['', 'MDPW01', cmd(1), 'echo'])
      expect((await router.inbox.next((m) => m[3] === cmd(4))).map(String).slice(1)).to.deep.equal(['', 'MDPW01', cmd(4)])
      await router.socket.send([workerId, '', 'MDPW01', cmd(4)])

      const reply = client(endpoint).request('echo', 'hi')
      const request = await router.inbox.next((m) => m[2] === 'MDPC01')
      const clientId = request[0] ?? Buffer.alloc(0)
      expect(request.map(String).slice(1)).to.deep.equal(['', 'MDPC01', 'echo', 'hi'])
      await router.socket.send([workerId, '', 'MDPW01', cmd(2), clientId, '', 'hi'])
      const workerReply = await router.inbox.next((m) => m[3] === cmd(3))
      expect(workerReply[0]?.equals(workerId)).to.equal(true)
      expect(workerReply[4]?.equals(clientId)).to.equal(true)
      expect(workerReply.map(String).slice(5)).to.deep.equal(['', 're', 'hi'])
      await router.socket.send([clientId, '', 'MDPC01', 'echo', ...workerReply.slice(6)])
      expect(str(await reply)).to.deep.equal(['re', 'hi'])

      // DISCONNECT from the broker: a new socket (new routing id) and READY again, at once.
      await router.socket.send([workerId, '', 'MDPW01', cmd(5)])
      const again = await router.inbox.next((m) => m[3] === cmd(1), 500)
      expect(again[0]?.equals(workerId)).to.equal(false)
      expect(worker.connects).to.equal(2)

      // close() says DISCONNECT by default...
      await worker.close()
      const bye = await router.inbox.next((m) => m[3] === cmd(5))
      expect(bye[0]?.equals(again[0] ?? Buffer.alloc(0))).to.equal(true)
    })

    it('a worker with sendDisconnectOnClose: false closes without DISCONNECT', async () => {
      const router = raw(new Router())
      await router.socket.bind('tcp://127.0.0.1:*')
      const worker = new MajordomoWorker(router.socket.lastEndpoint ?? '', 'echo', { heartbeatMs: HB, sendDisconnectOnClose: false })
      await router.inbox.next((m) => m[3] === cmd(1))
      await worker.close()
      await sleep(HB * 3)
      expect(router.inbox.messages.filter((m) => String(m[3]) === cmd(5))).to.deep.equal([])
    })
  })

  describe('flood of bad input', () => {
    it('drops and counts thousands of malformed messages, then serves a good request', async () => {
      const { broker, endpoint, joined } = await startBroker()
      startWorker(endpoint, 'echo', (b) => b)
      const rawWorker = raw(new Dealer())
      rawWorker.socket.connect(endpoint)
      await rawWorker.socket.send(['', 'MDPW01', cmd(1), 'raw'])
      await until(() => joined.length === 2)
      const stranger = raw(new Dealer())
      stranger.socket.connect(endpoint)
      const N = 500
      const bad: [Dealer, (string | Buffer)[]][] = [
        [stranger.socket, ['garbage']], // bad-envelope
        [stranger.socket, ['', 'XXXXXX', 'x']], // bad-header
        [stranger.socket, ['']], // bad-header (nothing after the delimiter)
        [stranger.socket, ['', 'MDPW01', cmd(9)]], // bad-command
        [stranger.socket, ['', 'MDPW01']], // bad-command (missing)
        [stranger.socket, ['', 'MDPW01', cmd(1)]], // bad-frames: READY without service
        [stranger.socket, ['', 'MDPW01', cmd(4), 'extra']], // bad-frames
        [stranger.socket, ['', 'MDPC01']], // bad-frames: no service
        [stranger.socket, ['', 'MDPW01', cmd(4)]], // unexpected-command (answered with DISCONNECT)
        [rawWorker.socket, ['', 'MDPW01', cmd(3), 'nobody', '', 'x']], // unknown-client
        [rawWorker.socket, ['', 'MDPW01', cmd(2), 'nobody', '', 'x']], // bad-command: REQUEST from a worker
      ]
      for (let i = 0; i < N; i++) for (const [socket, frames] of bad) await socket.send(frames)
      const expected = {
        'bad-envelope': N, 'bad-header': 2 * N, 'bad-command': 3 * N, 'bad-frames': 3 * N, 'unexpected-command': N, 'unknown-client': N,
      }
      await until(() => JSON.stringify(broker.stats().dropped) === JSON.stringify(expected), 4000)
      expect(str(await client(endpoint).request('echo', 'still here'))).to.deep.equal(['still here'])
      expect(broker.stats().dropped).to.deep.equal(expected)
      expect(broker.stats().workers).to.equal(2)
    })
  })

  describe('queue limits and admission (hooks for the RPC layer)', () => {
    async function rejectingBroker(opts: BrokerOptions) {
      const rejects: [string, string][] = []
      const ref: { broker?: MajordomoBroker } = {}
      const started = await startBroker({
        ...opts,
        onReject: (req, reason) => {
          rejects.push([String(req.body[0]), reason])
          ref.broker?.sendToClient(req.clientId, req.service, ['rejected', reason])
        },
      })
      ref.broker = started.broker
      return { ...started, rejects }
    }

    it('rejects requests beyond maxQueuePerService with queue-full, serves the queued ones later', async () => {
      const { broker, endpoint, rejects } = await rejectingBroker({ maxQueuePerService: 2 })
      const c = client(endpoint)
      for (const n of ['1', '2', '3']) await c.send('later', n)
      expect(str((await c.receive())?.body)).to.deep.equal(['rejected', 'queue-full'])
      expect(broker.stats().services.later?.queued).to.equal(2)
      startWorker(endpoint, 'later', (b) => b)
      const replies = [String((await c.receive())?.body[0]), String((await c.receive())?.body[0])]
      expect(replies).to.deep.equal(['1', '2'])
      expect(rejects).to.deep.equal([['3', 'queue-full']])
    })

    it('expires requests waiting for a service with no worker after requestExpiryMs', async () => {
      const { broker, endpoint, rejects } = await rejectingBroker({ heartbeatMs: HB, requestExpiryMs: 100 })
      const c = client(endpoint)
      await c.send('nobody', 'x')
      expect(str((await c.receive())?.body)).to.deep.equal(['rejected', 'expired'])
      expect(rejects).to.deep.equal([['x', 'expired']])
      expect(broker.stats().rejected.expired).to.equal(1)
      expect(broker.stats().services.nobody).to.equal(undefined)
    })

    it('rejects at once with no-service when requestExpiryMs is 0', async () => {
      const { endpoint, rejects } = await rejectingBroker({ requestExpiryMs: 0 })
      expect(str(await client(endpoint).request('nobody', 'x'))).to.deep.equal(['rejected', 'no-service'])
      expect(rejects).to.deep.equal([['x', 'no-service']])
    })

    it('drops a request that admit() refuses right before dispatch', async () => {
      const admitted: string[] = []
      const { endpoint, joined, rejects } = await rejectingBroker({
        admit: (req) => (admitted.push(String(req.body[0])), String(req.body[0]) !== 'stale'),
      })
      startWorker(endpoint, 'echo', (b) => b)
      await until(() => joined.length === 1)
      const c = client(endpoint)
      await c.send('echo', 'stale')
      await c.send('echo', 'fresh')
      const replies = [str((await c.receive())?.body), str((await c.receive())?.body)]
      expect(replies).to.have.deep.members([['rejected', 'not-admitted'], ['fresh']])
      expect(rejects).to.deep.equal([['stale', 'not-admitted']])
      expect(admitted).to.deep.equal(['stale', 'fresh'])
    })
  })
})
