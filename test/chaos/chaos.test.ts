/**
 * Chaos: clients under steady load, direct to servers and through a durable broker, while servers and
 * workers are killed with SIGKILL and started again on the same endpoint, and the broker is killed and
 * started again once (same endpoint, same durable dir).
 *
 * Every call must end by its deadline, in success or a clear error: idempotent calls (`jobs.work`)
 * all succeed; the others (`jobs.once`) succeed or fail UNAVAILABLE saying they may have run. No
 * request id runs twice in one process, and a second run elsewhere only follows a run whose process
 * was killed (or, through the broker, a run at a worker when the broker was killed: it answers
 * `workerLost`, and the retry may go to another worker). A `once` call never runs twice.
 *
 * The short form runs in `npm test`; `npm run chaos` runs it for CHAOS_MS (60 s there).
 */
import { expect } from 'chai'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RpcClient, RpcError } from '../../lib/index.js'
import { forkServer, type ForkedServer } from '../../benchmarks/harness/child.js'
import { Jobs, type RunReport } from '../helpers/work-server.js'
import { deadEndpoint } from '../integration/client-raw-server.js'
import { sleep, until } from '../helpers/endpoints.js'

const WORK_SERVER = new URL('../helpers/work-server.js', import.meta.url).pathname
const BROKER_PROCESS = new URL('../helpers/broker-process.js', import.meta.url).pathname

const CHAOS_MS = Number(process.env['CHAOS_MS'] ?? 8000)
/** Every call's deadline. */
const CALL_TIMEOUT_MS = 8000
const SERVERS = 3
const WORKERS = 3
/** Calls each client keeps in flight (one loop each, a call at a time). */
const LOOPS_PER_CLIENT = 6

interface Slot {
  readonly kind: 'server' | 'worker'
  readonly args: string[]
  proc: ForkedServer
}

interface Outcome {
  readonly id: string
  readonly via: 'direct' | 'broker'
  readonly method: 'work' | 'once'
  /** 'ok', or the error's code with the details that say where the call got to. */
  result?: string
  error?: RpcError | Error
}

interface Run extends RunReport {
  readonly at: number
}

describe(`chaos: SIGKILLs under load, direct and through the broker (${CHAOS_MS} ms)`, function () {
  this.timeout(CHAOS_MS + CALL_TIMEOUT_MS + 60_000)
  let dir: string | undefined
  const slots: Slot[] = []
  let broker: ForkedServer | undefined
  const clients: RpcClient[] = []

  after(async () => {
    for (const client of clients) await client.close().catch(() => undefined)
    await Promise.all([...slots.map((s) => s.proc.stop()), broker?.stop()])
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  it('every call ends by its deadline; idempotent calls all succeed; no request runs twice on a live server; lost = 0', async () => {
    dir = await mkdtemp(join(tmpdir(), 'zrpc-chaos-'))
    const runs: Run[] = []
    const killed = new Set<number>()
    const listen = (proc: ForkedServer): ForkedServer => {
      proc.child.on('message', (m: RunReport | { endpoint: string }) => 'ran' in m && runs.push({ ...m, at: Date.now() }))
      return proc
    }
    /** Starts a process, again if the port is not free yet after a kill. */
    const start = async (module: string, args: string[]): Promise<ForkedServer> => {
      for (let attempt = 1; ; attempt++) {
        try {
          return listen(await forkServer(module, args))
        } catch (err) {
          if (attempt >= 5) throw err
          await sleep(100)
        }
      }
    }
    const killAndWait = async (proc: ForkedServer): Promise<void> => {
      const exited = new Promise<void>((resolve) => (proc.child.exitCode !== null || proc.child.signalCode !== null ? resolve() : proc.child.once('exit', () => resolve())))
      killed.add(proc.child.pid!)
      proc.child.kill('SIGKILL')
      await exited
    }

    const brokerEndpoint = await deadEndpoint()
    broker = await start(BROKER_PROCESS, [brokerEndpoint, dir])
    const serverEndpoints: string[] = []
    for (let i = 0; i < SERVERS; i++) serverEndpoints.push(await deadEndpoint())
    const started = await Promise.all([
      ...serverEndpoints.map(async (endpoint): Promise<Slot> => ({ kind: 'server', args: [endpoint], proc: await start(WORK_SERVER, [endpoint]) })),
      ...Array.from({ length: WORKERS }, async (): Promise<Slot> => {
        const args = ['--broker', brokerEndpoint]
        return { kind: 'worker', args, proc: await start(WORK_SERVER, args) }
      }),
    ])
    slots.push(...started)

    const direct = new RpcClient({ connect: serverEndpoints, timeoutMs: CALL_TIMEOUT_MS, waitForReady: false })
    const viaBroker = new RpcClient({ broker: brokerEndpoint, timeoutMs: CALL_TIMEOUT_MS, waitForReady: true })
    clients.push(direct, viaBroker)
    await until(() => direct.stats.every((s) => s.connected), 5000, 'the direct client connected to every server')
    // One call through the broker, so the workers are registered before the chaos starts.
    await viaBroker.service(Jobs).work({ id: 'warm-up', ms: 1 })

    const outcomes: Outcome[] = []
    const pending = new Set<Outcome>()
    let lastDeadline = 0
    const loadStarted = Date.now()
    const loadEnds = loadStarted + CHAOS_MS
    const loop = async (via: 'direct' | 'broker', loopIndex: number): Promise<void> => {
      const jobs = (via === 'direct' ? direct : viaBroker).service(Jobs)
      for (let n = 0; Date.now() < loadEnds; n++) {
        const method = n % 2 === 0 ? 'work' : 'once'
        const outcome: Outcome = { id: `${via}-${loopIndex}-${n}`, via, method }
        outcomes.push(outcome)
        pending.add(outcome)
        lastDeadline = Date.now() + CALL_TIMEOUT_MS
        try {
          const result = await jobs[method]({ id: outcome.id, ms: 5 + Math.floor(Math.random() * 25) })
          outcome.result = result.id === outcome.id ? 'ok' : `wrong answer ${JSON.stringify(result)}`
        } catch (err) {
          outcome.error = err as Error
          outcome.result = err instanceof RpcError ? describeError(err) : `not an RpcError: ${String(err)}`
        }
        pending.delete(outcome)
      }
    }
    const load = [...Array.from({ length: LOOPS_PER_CLIENT }, (_, i) => loop('direct', i)), ...Array.from({ length: LOOPS_PER_CLIENT }, (_, i) => loop('broker', i))]

    // The chaos: one process at a time, killed and started again; the broker once, half way.
    let kills = 0
    let brokerKilledAt: number | undefined
    while (Date.now() < loadEnds - 300) {
      await sleep(200 + Math.floor(Math.random() * 300))
      if (brokerKilledAt === undefined && Date.now() - loadStarted > CHAOS_MS / 2) {
        brokerKilledAt = Date.now()
        await killAndWait(broker)
        broker = await start(BROKER_PROCESS, [brokerEndpoint, dir])
      } else {
        const slot = slots[Math.floor(Math.random() * slots.length)]!
        await killAndWait(slot.proc)
        slot.proc = await start(WORK_SERVER, slot.args)
      }
      kills++
    }

    // Every call ends by its deadline: none may still be pending once the last one is past.
    const ended = Promise.all(load)
    await until(() => pending.size === 0, Math.max(0, lastDeadline - Date.now()) + 2000, 'every call to end').catch(() => undefined)
    const lost = pending.size
    if (lost === 0) await ended
    await sleep(200) // the last run reports, over IPC

    const failed: Record<string, number> = {}
    for (const o of outcomes) if (o.result !== undefined && o.result !== 'ok') failed[`${o.method} ${o.result}`] = (failed[`${o.method} ${o.result}`] ?? 0) + 1
    const ok = outcomes.filter((o) => o.result === 'ok').length

    const runsById = new Map<string, Run[]>()
    for (const run of runs) runsById.set(run.ran, [...(runsById.get(run.ran) ?? []), run])
    let ranTwiceElsewhere = 0
    const problems: string[] = []
    const byId = new Map(outcomes.map((o) => [o.id, o]))
    for (const [id, idRuns] of runsById) {
      const pids = idRuns.map((r) => r.pid)
      if (new Set(pids).size !== pids.length) problems.push(`${id} ran twice in one process: ${pids.join(', ')}`)
      if (idRuns.length < 2) continue
      ranTwiceElsewhere++
      const outcome = byId.get(id)
      if (outcome?.method === 'once') problems.push(`non-idempotent ${id} ran ${idRuns.length} times: ${pids.join(', ')}`)
      // Every run before the last was in a process killed later, or at a worker when the broker was killed.
      for (const run of idRuns.slice(0, -1)) {
        const explained = killed.has(run.pid) || (outcome?.via === 'broker' && brokerKilledAt !== undefined && run.at <= brokerKilledAt)
        if (!explained) problems.push(`${id} ran on live ${run.pid} and again: ${pids.join(', ')}`)
      }
    }
    for (const o of outcomes) {
      if (o.result === undefined) continue
      if (o.method === 'work' && o.result !== 'ok') problems.push(`idempotent ${o.id} failed: ${o.result}: ${o.error?.message ?? ''}`)
      if (o.method === 'once' && o.result !== 'ok') {
        const err = o.error
        const mayHaveRun = err instanceof RpcError && err.code === 'UNAVAILABLE' && /may or may not have run/.test(err.message)
        if (!mayHaveRun) problems.push(`${o.id} failed without saying it may have run: ${o.result}: ${err?.message ?? ''}`)
      }
      if (o.result === 'ok' && !runsById.has(o.id)) problems.push(`${o.id} succeeded but no run was reported`)
    }
    for (const o of pending) problems.push(`${o.id} (${o.via} ${o.method}) never ended`)

    console.log(
      `      [chaos] ${CHAOS_MS} ms sent=${outcomes.length} ok=${ok} failed=${JSON.stringify(failed)} lost=${lost} kills=${kills} ranTwiceElsewhere=${ranTwiceElsewhere}`,
    )
    expect(problems, problems.slice(0, 10).join('\n')).to.deep.equal([])
    expect(lost).to.equal(0)
    expect(kills).to.be.greaterThan(0)
    expect(ok).to.be.greaterThan(outcomes.length / 2)
  })
})

/** The code and the details that say where the call got to: `UNAVAILABLE(connectionLost)`. */
function describeError(err: RpcError): string {
  const details = (typeof err.details === 'object' && err.details !== null ? err.details : {}) as Record<string, unknown>
  const flags = ['notStarted', 'workerLost', 'connectionLost', 'mayHaveRun', 'broker'].filter((k) => details[k] === true)
  return flags.length > 0 ? `${err.code}(${flags.join(',')})` : err.code
}
