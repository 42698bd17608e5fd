/**
 * A server process for failover tests: `jobs.work` (idempotent) and `jobs.once` (not idempotent)
 * each tell the parent over IPC when they start a run, so the parent can count runs per request id
 * and per process even when it kills this one with SIGKILL. Reports `{ endpoint }` once bound (as a
 * broker worker: the broker's endpoint, once connecting), and exits on 'stop' or when the parent goes.
 *
 *   fork('dist/test/helpers/work-server.js', [bindAddress])
 *   fork('dist/test/helpers/work-server.js', ['--broker', brokerEndpoint])   // a worker, heartbeat 200 ms × 5
 */
import { Type } from 'typebox'
import { RpcServer, defineService } from '../../lib/index.js'

export const Jobs = defineService('jobs', {
  work: { params: Type.Object({ id: Type.String(), ms: Type.Integer() }), result: Type.Object({ id: Type.String(), pid: Type.Integer() }), idempotent: true },
  once: { params: Type.Object({ id: Type.String(), ms: Type.Integer() }), result: Type.Object({ id: Type.String(), pid: Type.Integer() }) },
})

/** What a server process tells its parent about each run it starts. */
export interface RunReport {
  readonly ran: string
  readonly method: 'work' | 'once'
  readonly pid: number
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

async function main(): Promise<void> {
  const run = async (method: 'work' | 'once', id: string, ms: number): Promise<{ id: string; pid: number }> => {
    const report: RunReport = { ran: id, method, pid: process.pid }
    process.send?.(report)
    await sleep(ms)
    return { id, pid: process.pid }
  }
  const server = new RpcServer().implement(Jobs, {
    work: ({ id, ms }) => run('work', id, ms),
    once: ({ id, ms }) => run('once', id, ms),
  })
  let endpoint: string | undefined
  if (process.argv[2] === '--broker') {
    endpoint = process.argv[3]!
    // The broker's heartbeat in test/helpers/broker-process.ts; credit for several calls at once.
    await server.connectBroker(endpoint, { heartbeatMs: 200, liveness: 5, concurrency: 4 })
  } else {
    ;[endpoint] = await server.bind(process.argv[2] ?? 'tcp://127.0.0.1:*')
  }
  process.send?.({ endpoint })
  const stop = (): void => void server.close({ timeoutMs: 500 }).then(() => process.exit(0))
  process.on('message', (message) => message === 'stop' && stop())
  process.on('disconnect', stop)
}

if (process.send !== undefined) {
  main().catch((err: unknown) => {
    process.send?.({ error: String(err) })
    process.exit(1)
  })
}
