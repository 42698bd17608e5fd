/**
 * The durable broker (docs/protocol.md, "The durable broker"): accepted calls are on disk before they
 * are queued, survive a broker restart (closed, or killed with SIGKILL at random points under load),
 * and are answered once their callers reconnect; an idempotent call may run again only if it was at
 * a worker when the broker died, a non-idempotent one never: its caller hears that it may have run.
 */
import { expect } from 'chai'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Type } from 'typebox'
import { Broker, BrokerAdmin, RpcClient, RpcError, RpcServer, defineService, type CallInfo } from '../../lib/index.js'
import { forkServer, type ForkedServer } from '../../benchmarks/harness/child.js'
import { deadEndpoint } from './client-raw-server.js'
import { sleep, until } from '../helpers/endpoints.js'

const BROKER_PROCESS = new URL('../helpers/broker-process.js', import.meta.url).pathname
const HEARTBEAT = { heartbeatMs: 200, liveness: 5 }

const Work = defineService('work', {
  safe: { params: Type.Object({ n: Type.Integer(), ms: Type.Integer() }), result: Type.Integer(), idempotent: true },
  once: { params: Type.Object({ n: Type.Integer(), ms: Type.Integer() }), result: Type.Integer() },
})

/** A worker that counts runs per call number. */
function workServer(runs: Map<string, number>): RpcServer {
  const run = async (kind: string, n: number, ms: number): Promise<number> => {
    runs.set(`${kind}${n}`, (runs.get(`${kind}${n}`) ?? 0) + 1)
    await sleep(ms)
    return n
  }
  return new RpcServer().implement(Work, { safe: ({ n, ms }) => run('safe', n, ms), once: ({ n, ms }) => run('once', n, ms) })
}

describe('the durable broker', function () {
  this.timeout(60_000)
  let dir: string
  const closers: Array<() => Promise<unknown>> = []

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'zrpc-durable-'))
  })
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close().catch(() => undefined)
    await rm(dir, { recursive: true, force: true })
  })

  it('dispatches a call to an idle worker as soon as it is on disk, in every sync mode', async () => {
    for (const sync of ['always', 'batch', 'none'] as const) {
      const broker = new Broker({ ...HEARTBEAT, durable: { dir: join(dir, sync), sync } })
      const [endpoint] = (await broker.bind('tcp://127.0.0.1:*')) as [string]
      const runs = new Map<string, number>()
      const server = workServer(runs)
      await server.connectBroker(endpoint, HEARTBEAT)
      await until(() => broker.stats().workers === 1, 3000, 'the worker')
      const client = new RpcClient({ broker: endpoint, timeoutMs: 2000 })
      try {
        // One call, nothing else to wake the broker: it must not wait for another message to be dispatched.
        expect(await client.service(Work).once({ n: 7, ms: 1 }), sync).to.equal(7)
        expect(await client.service(Work).safe({ n: 8, ms: 1 }), sync).to.equal(8)
      } finally {
        await client.close()
        await server.close({ timeoutMs: 200 })
        await broker.close()
      }
    }
  })

  it('keeps a queued call across a restart: the caller, still waiting, gets its answer from the broker that came back', async () => {
    const endpoint = await deadEndpoint()
    let broker = new Broker({ ...HEARTBEAT, requestExpiryMs: 60_000, durable: { dir } })
    await broker.bind(endpoint)
    const client = new RpcClient({ broker: endpoint, timeoutMs: 20_000 })
    closers.push(() => client.close())
    const work = client.service(Work)
    // No worker yet: the calls wait in the broker, on disk.
    const info: CallInfo = {}
    const pending = [work.once({ n: 1, ms: 1 }, { info }), work.safe({ n: 2, ms: 1 })]
    await until(() => broker.stats().durable?.calls === 2, 3000, 'both calls on record')
    await broker.close()
    broker = new Broker({ ...HEARTBEAT, requestExpiryMs: 60_000, durable: { dir } })
    closers.push(() => broker.close())
    await broker.bind(endpoint)
    expect(broker.stats().services['work']?.queued).to.equal(2)
    const runs = new Map<string, number>()
    const server = workServer(runs)
    closers.push(() => server.close({ timeoutMs: 200 }))
    await server.connectBroker(endpoint, HEARTBEAT)
    expect(await Promise.all(pending)).to.deep.equal([1, 2])
    expect([...runs.values()]).to.deep.equal([1, 1])
    expect(info.attempts).to.equal(1) // not a retry: the same call, kept by the broker
    await until(() => broker.stats().durable?.calls === 0, 2000, 'the record emptied once answered')
    const overview = await client.service(BrokerAdmin).services({})
    expect(overview.durable?.fileBytes).to.be.greaterThan(0)
  })

  it('keeps a deferred call across a SIGKILL of the broker: queued before, collected after', async () => {
    const endpoint = await deadEndpoint()
    let brokerProcess = await forkServer(BROKER_PROCESS, [endpoint, dir])
    closers.push(() => brokerProcess.stop())
    const client = new RpcClient({ broker: endpoint, timeoutMs: 10_000, waitForReady: true })
    closers.push(() => client.close())
    const jobs = client.queue(Work)
    // No worker: both wait in the broker, on disk, when the broker is killed.
    const tickets = [await jobs.safe.submit({ n: 1, ms: 1 }), await jobs.once.submit({ n: 2, ms: 1 })]
    brokerProcess.child.kill('SIGKILL')
    brokerProcess = await forkServer(BROKER_PROCESS, [endpoint, dir])
    const runs = new Map<string, number>()
    const server = workServer(runs)
    closers.push(() => server.close({ timeoutMs: 200 }))
    await server.connectBroker(endpoint, HEARTBEAT)
    expect(await jobs.safe.collect(tickets[0]!, { waitMs: 5000 })).to.equal(1)
    expect(await jobs.once.collect(tickets[1]!, { waitMs: 5000 })).to.equal(2)
    expect(Object.fromEntries(runs)).to.deep.equal({ safe1: 1, once2: 1 })
  })

  it('loses no accepted call when the broker is killed (SIGKILL) at random points under load; duplicates only where allowed', async () => {
    const endpoint = await deadEndpoint()
    let brokerProcess: ForkedServer = await forkServer(BROKER_PROCESS, [endpoint, dir])
    closers.push(() => brokerProcess.stop())
    const runs = new Map<string, number>()
    const server = workServer(runs)
    closers.push(() => server.close({ timeoutMs: 200 }))
    await server.connectBroker(endpoint, { ...HEARTBEAT, concurrency: 8 })
    // waitForReady: calls made while the broker is down wait for it (else they fail fast, not accepted).
    const client = new RpcClient({ broker: endpoint, timeoutMs: 30_000, waitForReady: true })
    closers.push(() => client.close())
    const work = client.service(Work)

    const total = 400
    const outcomes: Array<Promise<string>> = []
    const started = Date.now()
    let sent = 0
    let kills = 0
    // Calls go out steadily while the broker is killed and started again, 6 times.
    const load = (async () => {
      while (sent < total) {
        const n = sent++
        const call = n % 2 === 0 ? work.safe({ n, ms: 5 }) : work.once({ n, ms: 5 })
        outcomes.push(
          call.then(
            () => 'ok',
            (err: RpcError) => {
              if ((err.details as { mayHaveRun?: boolean } | undefined)?.mayHaveRun === true) return 'UNAVAILABLE mayHaveRun'
              return `${err.code}: ${err.message} ${JSON.stringify(err.details)}`
            },
          ),
        )
        if (n % 10 === 9) await sleep(10)
      }
    })()
    while (kills < 6) {
      await sleep(50 + Math.floor(Math.random() * 150))
      brokerProcess.child.kill('SIGKILL')
      kills++
      brokerProcess = await forkServer(BROKER_PROCESS, [endpoint, dir])
    }
    await load
    const results = await Promise.all(outcomes)
    const tally = new Map<string, number>()
    for (const r of results) tally.set(r, (tally.get(r) ?? 0) + 1)
    console.log(`      [durable] ${total} calls, ${kills} SIGKILLs in ${Date.now() - started} ms: ${JSON.stringify(Object.fromEntries(tally))}`)
    for (let n = 0; n < total; n++) {
      const result = results[n]!
      if (n % 2 === 0) expect(result, `idempotent call ${n}`).to.equal('ok')
      else expect(['ok', 'UNAVAILABLE mayHaveRun'], `call ${n}`).to.include(result)
      // A call that must not run twice never does; an idempotent one only if the broker died while it was at the worker.
      const ran = runs.get(n % 2 === 0 ? `safe${n}` : `once${n}`) ?? 0
      if (n % 2 === 1) expect(ran, `once${n} ran ${ran} times`).to.be.at.most(1)
      if (result === 'ok') expect(ran).to.be.at.least(1)
    }
    const twice = [...runs.entries()].filter(([k, v]) => k.startsWith('safe') && v > 1).length
    console.log(`      [durable] idempotent calls that ran twice: ${twice}`)
  })
})
