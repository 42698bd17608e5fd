/**
 * Retries without duplicates (docs/protocol.md, "Retries and the call record"): real server processes
 * killed with SIGKILL under load, and a server whose caller's connection goes while a keyed call runs.
 *
 * Each server process tells this one over IPC when it starts a run (test/helpers/work-server.ts), so
 * runs are counted per request id and per process, the killed ones included.
 */
import { expect } from 'chai'
import { createServer, connect, type AddressInfo, type Socket } from 'node:net'
import { Dealer } from 'zeromq'
import { Type } from 'typebox'
import { RpcClient, RpcError, RpcServer, defineService, type CallInfo } from '../../lib/index.js'
import { encodeCbor, decodeCbor } from '../../lib/codec/cbor.js'
import { Kind, encodeRequest, parseFrame } from '../../lib/codec/envelope.js'
import { forkServer, type ForkedServer } from '../../benchmarks/harness/child.js'
import { Jobs, type RunReport } from '../helpers/work-server.js'
import { rejection, sleep, until } from '../helpers/endpoints.js'

const WORK_SERVER = new URL('../helpers/work-server.js', import.meta.url).pathname

/** Forks `n` work servers and records every run they report. */
async function startServers(n: number): Promise<{ servers: ForkedServer[]; runs: RunReport[] }> {
  const runs: RunReport[] = []
  const servers = await Promise.all(Array.from({ length: n }, () => forkServer(WORK_SERVER, ['tcp://127.0.0.1:*'])))
  for (const server of servers) server.child.on('message', (m: RunReport | { endpoint: string }) => 'ran' in m && runs.push(m))
  return { servers, runs }
}

describe('failover with real server processes (SIGKILL under load)', function () {
  this.timeout(60_000)
  let servers: ForkedServer[] = []
  let client: RpcClient | undefined

  afterEach(async () => {
    await client?.close()
    await Promise.all(servers.map((s) => s.stop()))
    servers = []
  })

  it('every idempotent call succeeds; no request id runs twice on a live server; a second run only after the first server died', async () => {
    const started = await startServers(3)
    servers = started.servers
    const { runs } = started
    client = new RpcClient({ connect: servers.map((s) => s.endpoint), timeoutMs: 10_000 })
    const jobs = client.service(Jobs)
    const victim = servers[0]!
    const total = 600
    const inFlight = 30
    let next = 0
    let done = 0
    const failures: unknown[] = []
    const worker = async (): Promise<void> => {
      while (next < total) {
        const id = `job-${next++}`
        try {
          const result = await jobs.work({ id, ms: 15 })
          expect(result.id).to.equal(id)
        } catch (err) {
          failures.push(err)
        }
        done++
      }
    }
    const load = Promise.all(Array.from({ length: inFlight }, worker))
    await until(() => done >= total / 4, 20_000, 'a quarter of the calls')
    // Calls are in flight on every server now: kill one.
    const inFlightThere = client.stats.find((s) => s.endpoint === victim.endpoint)?.inFlight ?? 0
    victim.child.kill('SIGKILL')
    await load
    expect(failures, String(failures[0])).to.deep.equal([])

    const pidsById = new Map<string, number[]>()
    for (const run of runs) pidsById.set(run.ran, [...(pidsById.get(run.ran) ?? []), run.pid])
    expect(pidsById.size).to.equal(total)
    const killedPid = victim.child.pid!
    let ranTwice = 0
    for (const [id, pids] of pidsById) {
      expect(new Set(pids).size, `${id} ran twice on one server: ${pids.join(', ')}`).to.equal(pids.length)
      if (pids.length > 1) {
        ranTwice++
        expect(pids, `${id} ran on two servers, neither of them the one killed`).to.include(killedPid)
        expect(pids).to.have.length(2)
      }
    }
    // The calls the killed server held were retried on the others (at most those in flight there).
    expect(inFlightThere).to.be.greaterThan(0)
    expect(ranTwice).to.be.within(1, inFlightThere)
  })

  it('a non-idempotent call whose server died fails UNAVAILABLE saying it may have run, and is never run elsewhere', async () => {
    const started = await startServers(2)
    servers = started.servers
    const { runs } = started
    // One endpoint at first, so the call surely goes to the server that dies; the other is there to retry on.
    client = new RpcClient({ connect: servers[0]!.endpoint, timeoutMs: 10_000 })
    const jobs = client.service(Jobs)
    const pending = rejection(jobs.once({ id: 'only-once', ms: 5000 }))
    await until(() => runs.length === 1, 5000, 'the run to start')
    client.addEndpoint(servers[1]!.endpoint)
    servers[0]!.child.kill('SIGKILL')
    const err = await pending
    expect(err).to.be.instanceOf(RpcError).with.property('code', 'UNAVAILABLE')
    expect((err as RpcError).message).to.match(/may or may not have run/)
    expect((err as RpcError).details).to.deep.include({ connectionLost: true })
    await sleep(200)
    expect(runs.map((r) => r.ran)).to.deep.equal(['only-once'])
  })
})

describe('a lost connection to a live server', function () {
  it('sends the retry of an idempotent call back to that server, whose record answers it: no second run anywhere', async () => {
    const runsOn = { a: 0, b: 0 }
    const make = (name: 'a' | 'b'): RpcServer =>
      new RpcServer().implement(Counter, {
        bump: async ({ ms }) => {
          runsOn[name]++
          await sleep(ms)
          return name === 'a' ? 1 : 2
        },
      })
    const a = make('a')
    const b = make('b')
    const [aEndpoint] = (await a.bind('tcp://127.0.0.1:*')) as [string]
    const [bEndpoint] = (await b.bind('tcp://127.0.0.1:*')) as [string]
    // A TCP relay in front of server a, whose connections the test cuts while a keeps running.
    const sockets = new Set<Socket>()
    const relay = createServer((inbound) => {
      const outbound = connect(Number(new URL(aEndpoint.replace('tcp://', 'http://')).port), '127.0.0.1')
      for (const s of [inbound, outbound]) {
        sockets.add(s)
        s.on('error', () => undefined)
        s.on('close', () => sockets.delete(s))
      }
      inbound.pipe(outbound).pipe(inbound)
    })
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve))
    const relayEndpoint = `tcp://127.0.0.1:${(relay.address() as AddressInfo).port}`
    const client = new RpcClient({ connect: relayEndpoint, timeoutMs: 10_000 })
    try {
      const counter = client.service(Counter)
      expect(await counter.bump({ ms: 1 })).to.equal(1) // connected through the relay
      runsOn.a = 0
      // The call goes to a (the only endpoint yet); then b joins, where a retry could go.
      const info: CallInfo = {}
      const pending = counter.bump({ ms: 300 }, { info })
      await until(() => runsOn.a === 1, 2000, 'the run on a')
      client.addEndpoint(bEndpoint)
      await until(() => client.stats.every((s) => s.connected), 2000, 'b connected')
      for (const s of sockets) s.destroy()
      expect(await pending).to.equal(1)
      expect(runsOn).to.deep.equal({ a: 1, b: 0 })
      expect(info).to.deep.equal({ endpoint: relayEndpoint, attempts: 2 })
      expect(client.stats.find((s) => s.endpoint === relayEndpoint)?.connectionsLost).to.be.greaterThan(0)
      expect(a.stats.calls.record).to.deep.include({ joined: 1 })
    } finally {
      await client.close()
      relay.close()
      for (const s of sockets) s.destroy()
      await Promise.all([a.close({ timeoutMs: 500 }), b.close({ timeoutMs: 500 })])
    }
  })
})

const Counter = defineService('counter', {
  bump: { params: Type.Object({ ms: Type.Integer() }), result: Type.Integer(), idempotent: true },
})

describe("a server's call record", function () {
  let server: RpcServer
  let endpoint: string
  let runs: number
  const dealers: Dealer[] = []

  beforeEach(async () => {
    runs = 0
    server = new RpcServer().implement(Counter, {
      bump: async ({ ms }) => {
        runs++
        await sleep(ms)
        return runs
      },
    })
    ;[endpoint] = (await server.bind('tcp://127.0.0.1:*')) as [string]
  })

  afterEach(async () => {
    for (const d of dealers.splice(0)) d.close()
    await server.close({ timeoutMs: 500 })
  })

  const dealer = (): Dealer => {
    const d = new Dealer({ linger: 0 })
    d.connect(endpoint)
    dealers.push(d)
    return d
  }
  const key = Buffer.from('0123456789abcdef')
  const bump = (id: number, ms: number, withKey = key): Buffer => encodeRequest(id, 'counter', 'bump', 5000, null, encodeCbor({ ms }), undefined, withKey)
  const answer = async (d: Dealer): Promise<{ id: number; value: unknown }> => {
    const [frame] = await d.receive()
    const [env] = parseFrame(frame!)
    expect(env?.kind).to.equal(Kind.Reply)
    return { id: env!.id!, value: decodeCbor((env as { result: Uint8Array }).result) }
  }

  it('answers a retry of a finished call from the record, with the retry’s id, without running it again', async () => {
    const d = dealer()
    await d.send(bump(1, 1))
    expect(await answer(d)).to.deep.equal({ id: 1, value: 1 })
    await d.send(bump(2, 1))
    expect(await answer(d)).to.deep.equal({ id: 2, value: 1 })
    expect(runs).to.equal(1)
    // Another key is another call.
    await d.send(bump(3, 1, Buffer.from('another-key')))
    expect(await answer(d)).to.deep.equal({ id: 3, value: 2 })
    expect(server.stats.calls.record).to.deep.include({ replayed: 1 })
  })

  it('a retry that comes while the first run goes on waits for its outcome', async () => {
    const d = dealer()
    await d.send(bump(1, 150))
    await until(() => runs === 1, 1000, 'the first run')
    await d.send(bump(2, 150))
    const got = [await answer(d), await answer(d)].sort((a, b) => a.id - b.id)
    expect(got).to.deep.equal([
      { id: 1, value: 1 },
      { id: 2, value: 1 },
    ])
    expect(runs).to.equal(1)
    expect(server.stats.calls.record).to.deep.include({ joined: 1 })
  })

  it('a keyed call whose caller’s connection goes runs on, and the retry on a new connection gets its outcome', async () => {
    const first = dealer()
    await first.send(bump(1, 200))
    await until(() => runs === 1, 1000, 'the first run')
    first.close()
    await until(() => server.stats.calls.keptForRetry === 1, 2000, 'the server to notice the caller left')
    const second = dealer()
    await second.send(bump(7, 200))
    expect(await answer(second)).to.deep.equal({ id: 7, value: 1 })
    expect(runs).to.equal(1)
  })

  it('a call without a key is cancelled when its caller leaves, as before, and runs again when asked again', async () => {
    const first = dealer()
    await first.send(encodeRequest(1, 'counter', 'bump', 5000, null, encodeCbor({ ms: 200 })))
    await until(() => runs === 1, 1000, 'the first run')
    first.close()
    await until(() => server.stats.calls.peerGone === 1, 2000, 'the call to be cancelled')
    const second = dealer()
    await second.send(encodeRequest(1, 'counter', 'bump', 5000, null, encodeCbor({ ms: 1 })))
    expect((await answer(second)).value).to.equal(2)
  })

  it('sends a key with idempotent calls only, the same key in every attempt', async () => {
    const client = new RpcClient({ connect: endpoint })
    try {
      expect(await client.service(Counter).bump({ ms: 1 })).to.equal(1)
      expect(await client.service(Counter).bump({ ms: 1 })).to.equal(2)
      expect(server.stats.calls.record).to.deep.include({ entries: 2, replayed: 0 })
    } finally {
      await client.close()
    }
  })
})
