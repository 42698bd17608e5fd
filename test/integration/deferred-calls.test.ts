/**
 * Deferred calls through the broker: submit gives a ticket once the broker has accepted the call;
 * the call runs whether or not its submitter stays; any client collects the outcome by ticket, once.
 */
import { expect } from 'chai'
import { Type } from 'typebox'
import { Broker, BrokerAdmin, RpcClient, RpcError, RpcServer, defineService } from '../../lib/index.js'
import { rejection, sleep, until } from '../helpers/endpoints.js'

const HEARTBEAT = { heartbeatMs: 200, liveness: 5 }

const Reports = defineService('reports', {
  build: { params: Type.Object({ month: Type.Integer(), ms: Type.Integer() }), result: Type.String(), idempotent: true },
  boom: { params: Type.Object({}), result: Type.Null() },
})

describe('deferred calls (tickets)', function () {
  this.timeout(10_000)
  let broker: Broker
  let endpoint: string
  let server: RpcServer | undefined
  let aborted: string[]
  const clients: RpcClient[] = []

  const client = (): RpcClient => {
    const c = new RpcClient({ broker: endpoint, timeoutMs: 5000 })
    clients.push(c)
    return c
  }
  const startWorker = async (): Promise<void> => {
    server = new RpcServer().implement(Reports, {
      build: async ({ month, ms }, ctx) => {
        ctx.signal.addEventListener('abort', () => aborted.push((ctx.signal.reason as RpcError).code))
        await sleep(ms)
        return `report for month ${month}`
      },
      boom: () => {
        throw new RpcError('FAILED_PRECONDITION', 'not today', { why: 'test' })
      },
    })
    await server.connectBroker(endpoint, { ...HEARTBEAT, concurrency: 1 })
    await until(() => broker.stats().workers === 1, 5000, 'the worker')
  }

  beforeEach(async () => {
    aborted = []
    broker = new Broker({ ...HEARTBEAT, requestExpiryMs: 60_000 })
    ;[endpoint] = (await broker.bind('tcp://127.0.0.1:*')) as [string]
  })

  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close()
    await server?.close({ timeoutMs: 200 })
    server = undefined
    await broker.close()
  })

  it('runs a call after its submitter has gone, and another client collects it by ticket, once', async () => {
    const submitter = client()
    // No worker yet: the call waits in the broker.
    const ticket = await submitter.queue(Reports).build.submit({ month: 11, ms: 1 })
    expect(ticket).to.match(/^[0-9a-f]{32}$/)
    await submitter.close()
    const other = client().queue(Reports)
    expect(await other.build.status(ticket)).to.deep.equal({ state: 'queued' })
    await startWorker()
    expect(await other.build.collect(ticket, { waitMs: 3000 })).to.equal('report for month 11')
    // Collected: forgotten.
    expect(await other.build.status(ticket)).to.deep.equal({ state: 'unknown' })
    expect(await rejection(other.build.collect(ticket))).to.be.instanceOf(RpcError).with.property('code', 'NOT_FOUND')
  })

  it('says running while a worker has it; collect without waiting says it is still pending', async () => {
    await startWorker()
    const jobs = client().queue(Reports)
    const ticket = await jobs.build.submit({ month: 1, ms: 300 })
    await until(() => broker.stats().services['reports']?.inFlight === 1, 2000, 'the worker to take it')
    expect(await jobs.build.status(ticket)).to.deep.equal({ state: 'running' })
    const pending = await rejection(jobs.build.collect(ticket))
    expect(pending).to.be.instanceOf(RpcError).with.property('code', 'UNAVAILABLE')
    expect((pending as RpcError).details).to.deep.include({ pending: true, state: 'running' })
    expect(await jobs.build.collect(ticket, { waitMs: 3000 })).to.equal('report for month 1')
  })

  it('keeps a failure for collection, with its code and details; admin lists the tickets', async () => {
    await startWorker()
    const jobs = client().queue(Reports)
    const failing = await jobs.boom.submit({})
    const waiting = await jobs.build.submit({ month: 2, ms: 2000 })
    const status = await (async () => {
      await until(() => broker.stats().services['reports']?.replies === 1, 2000, 'the failure')
      return jobs.boom.status(failing)
    })()
    expect(status.state).to.equal('failed')
    const listed = await client().service(BrokerAdmin).tickets({})
    expect(listed.map((t) => [t.ticket, t.state]).sort()).to.deep.equal([[failing, 'failed'], [waiting, 'running']].sort())
    const err = await rejection(jobs.boom.collect(failing))
    expect(err).to.be.instanceOf(RpcError).with.property('code', 'FAILED_PRECONDITION')
    expect((err as RpcError).details).to.deep.equal({ why: 'test' })
  })

  it('cancels by ticket: a queued call leaves the queue, a running one is aborted at its worker', async () => {
    await startWorker()
    const jobs = client().queue(Reports)
    const running = await jobs.build.submit({ month: 3, ms: 3000 })
    const queued = await jobs.build.submit({ month: 4, ms: 1 })
    await until(() => broker.stats().services['reports']?.queued === 1, 2000, 'the second to queue')
    expect(await jobs.build.cancel(queued)).to.equal(true)
    expect(broker.stats().services['reports']?.queued).to.equal(0)
    expect(await jobs.build.cancel(running)).to.equal(true)
    await until(() => aborted.length === 1, 2000, 'the handler told')
    expect(aborted).to.deep.equal(['CANCELLED'])
    for (const ticket of [queued, running]) {
      expect(await rejection(jobs.build.collect(ticket))).to.be.instanceOf(RpcError).with.property('code', 'CANCELLED')
    }
    expect(await jobs.build.cancel(running)).to.equal(false)
  })

  it("counts the deadline from submission: a call that waits too long expires in the queue", async () => {
    const jobs = client().queue(Reports)
    const ticket = await jobs.build.submit({ month: 5, ms: 1 }, { timeoutMs: 100 })
    await sleep(150)
    await startWorker()
    const err = await rejection(jobs.build.collect(ticket, { waitMs: 2000 }))
    expect(err).to.be.instanceOf(RpcError).with.property('code', 'DEADLINE_EXCEEDED')
    expect((await client().service(BrokerAdmin).tickets({})).length).to.equal(0)
  })

  it('refuses bad submits before queueing anything, and is only for clients of a broker', async () => {
    const jobs = client().queue(Reports)
    expect(await rejection(jobs.build.submit({ month: 'x' as unknown as number, ms: 1 }))).to.be.instanceOf(RpcError).with.property('code', 'INVALID_ARGUMENT')
    const BrokerItself = defineService('zrpc.broker', { services: { params: Type.Object({}), result: Type.Unknown() } })
    expect(await rejection(client().queue(BrokerItself).services.submit({}))).to.be.instanceOf(RpcError).with.property('code', 'INVALID_ARGUMENT')
    const direct = new RpcClient({ connect: 'tcp://127.0.0.1:1' })
    clients.push(direct)
    expect(() => direct.queue(Reports)).to.throw(TypeError, /through a broker/)
  })
})
