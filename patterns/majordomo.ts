/**
 * Majordomo (ZeroMQ RFC 7, MDP/0.1, with RFC 8 MMI): service-oriented request-reply through a broker.
 * This file gathers the pieces and runs the example; each role lives in its own file:
 * `majordomo-protocol.ts` (frames, shared), `majordomo-broker.ts`, `majordomo-worker.ts`,
 * `majordomo-client.ts`. To copy one role, copy its file and the protocol file.
 *
 * ```
 *  client ──REQUEST  [] MDPC01 svc body..──►            ──REQUEST [] MDPW01 0x02 client [] body..──►
 *                                            broker                                                 worker
 *  client ◄─REPLY    [] MDPC01 svc body..───  (ROUTER) ◄─REPLY   [] MDPW01 0x03 client [] body..───
 *                                                      ◄─READY 0x01 svc / HEARTBEAT 0x04 / DISCONNECT 0x05─►
 * ```
 * Run the example: `node dist/patterns/majordomo.js`.
 */
import { pathToFileURL } from 'node:url'
import { MajordomoBroker } from './majordomo-broker.js'
import { MajordomoClient } from './majordomo-client.js'
import { MajordomoWorker } from './majordomo-worker.js'
import type { LogFn } from './majordomo-protocol.js'

export * from './majordomo-protocol.js'
export * from './majordomo-broker.js'
export * from './majordomo-worker.js'
export * from './majordomo-client.js'

/** Example size when run as a program. */
const NBR_WORKERS = 3
const NBR_REQUESTS = 10

/** What `main()` did. */
export interface MajordomoSummary {
  requests: number
  replies: number
  /** Requests each echo worker handled, by worker index. */
  perWorker: number[]
  /** Answers to `mmi.service echo`, `mmi.service nope`, `mmi.nope`. */
  mmi: { echo: string; missing: string; unknown: string }
}

/**
 * Runs the example in-process: a broker, `workers` echo workers, a synchronous client sending
 * `requests` requests, an asynchronous client pipelining `requests` more, and three MMI queries.
 *
 * @example
 * const summary = await main({ workers: 2, requests: 5 })
 */
export async function main(opts: { workers?: number; requests?: number; heartbeatMs?: number; log?: LogFn } = {}): Promise<MajordomoSummary> {
  const { workers = NBR_WORKERS, requests = NBR_REQUESTS, heartbeatMs = 250, log } = opts
  const logOpt = log ? { log } : {}
  const broker = new MajordomoBroker({ heartbeatMs, ...logOpt })
  const endpoint = await broker.bind('tcp://127.0.0.1:*')

  const perWorker = Array.from({ length: workers }, () => 0)
  let joined = 0
  const allJoined = new Promise<void>((resolve) => {
    const onJoin = () => {
      if (++joined < workers) return
      broker.off('worker-joined', onJoin)
      resolve()
    }
    broker.on('worker-joined', onJoin)
  })
  const echoWorkers = perWorker.map(() => new MajordomoWorker(endpoint, 'echo', { heartbeatMs, ...logOpt }))
  const serving = echoWorkers.map(async (worker, i) => {
    for await (const request of worker) {
      perWorker[i] = (perWorker[i] ?? 0) + 1
      await request.reply(request.body)
    }
  })
  await allJoined

  const client = new MajordomoClient(endpoint, logOpt)
  let replies = 0
  for (let n = 0; n < requests; n++) {
    const reply = await client.request('echo', `Hello world ${n}`)
    if (reply?.[0]?.toString() === `Hello world ${n}`) replies++
  }
  for (let n = 0; n < requests; n++) await client.send('echo', `Hello async ${n}`)
  for (let n = 0; n < requests; n++) if ((await client.receive())?.body[0]?.toString().startsWith('Hello async')) replies++
  log?.(`I: ${replies} replies received`)

  const mmi = async (service: string, name: string) => String((await client.request(service, name))?.at(-1) ?? 'no reply')
  const summary: MajordomoSummary = {
    requests: 2 * requests,
    replies,
    perWorker,
    mmi: { echo: await mmi('mmi.service', 'echo'), missing: await mmi('mmi.service', 'nope'), unknown: await mmi('mmi.nope', 'echo') },
  }
  log?.(`I: mmi.service echo: ${summary.mmi.echo}, nope: ${summary.mmi.missing}; mmi.nope: ${summary.mmi.unknown}`)

  client.close()
  await Promise.all(echoWorkers.map((w) => w.close()))
  await Promise.all(serving)
  await broker.close()
  return summary
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main({ log: (line) => console.log(line) }).then(
    (summary) => console.log(`I: done: ${JSON.stringify(summary)}`),
    (err: unknown) => {
      console.error(`E: ${String(err)}`)
      process.exitCode = 1
    },
  )
}
