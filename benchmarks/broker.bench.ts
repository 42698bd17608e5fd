/**
 * Calls through the broker next to two raw brokers and direct zrpc, in one run. Workers run in
 * separate processes; the brokers and the callers run in this one.
 *
 *   node dist/benchmarks/broker.bench.js [--quick] [--duration=ms] [--warmup-ms=ms] [--workers=1,2,4]
 *     [--windows=1,16,256] [--payloads=64,4096] [--concurrency=1,8] [--write]
 *
 * `--write` (which the runner passes on a full run) writes benchmarks/results/broker.json (machine,
 * argv, options, rows) and renders benchmarks/results/broker.md from it (harness/broker-report.ts).
 *
 * Each phase is a closed loop (harness/load.ts): `window` calls in flight, a warm-up, then `duration`
 * ms measured; it reports calls/s and the p50 and p99 round trip. Every system echoes each payload
 * (zrpc a string of that many 'x', the raw systems the same bytes).
 * Systems: `lbbroker` (patterns/lbbroker.ts, REQ clients, raw frames echoed), `raw-credit` (a raw Node
 * LRU broker, 32 credits per worker process, one DEALER caller: broker/raw-credit.ts), `zrpc-broker` (Broker +
 * RpcServer.connectBroker, typed echo), `zrpc-direct` (one server process, no broker; workers=1 only),
 * `zrpc-broker-io` (one server process whose worker takes `concurrency` requests at once, and a handler that waits 2 ms,
 * as an I/O-bound one would: several requests at once through the broker).
 *
 * Issue 8's broker aim is printed as pass/miss lines: zrpc-broker with 2 workers at 256 in flight, 64 B, at
 * least 5x raw-credit (2 workers, same window) and at least 0.4x zrpc-direct (same window), this run.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { LoadBalancingBroker, LoadBalancingClient } from '../patterns/lbbroker.js'
import { Broker, RpcClient } from '../lib/index.js'
import { Echo } from './broker/echo.js'
import { DEFAULT_CREDITS, RawCreditBroker, RawCreditClient } from './broker/raw-credit.js'
import { brokerAims, brokerMarkdown, brokerTable, formatAim, formatIoRow } from './harness/broker-report.js'
import { formatBytes, formatLatency, formatRate } from './harness/format.js'
import { runPhase, type CallFn, type PhaseResult } from './harness/load.js'
import { machineInfo, type MachineInfo } from './harness/machine.js'

export { brokerAims, type BrokerAim } from './harness/broker-report.js'

const WORKER = new URL('./broker/worker-main.js', import.meta.url)
const HEARTBEAT_MS = 1000
const IO_DELAY_MS = 2
/** Calls in flight for the zrpc-broker-io phases. */
const IO_WINDOW = 64

export interface BrokerBenchRow {
  system: 'lbbroker' | 'raw-credit' | 'zrpc-broker' | 'zrpc-direct' | 'zrpc-broker-io'
  workers: number
  window: number
  /** Bytes echoed per call. */
  payload: number
  callsPerSecond: number
  /** Round trip, microseconds, nearest rank (NaN, null in the JSON, when no call completed inside the window). */
  p50Us: number
  p99Us: number
  /** Calls that failed (rejected, or an echo of the wrong size) over the phase. */
  errors: number
  firstError?: string
  /** MDP workers in the one server process (zrpc-broker-io only). */
  concurrency?: number
}

export interface BrokerBenchOptions {
  workers: number[]
  windows: number[]
  payloads: number[]
  concurrencies: number[]
  ioWindow: number
  ioDelayMs: number
  /** Requests each raw-credit and zrpc-broker worker process takes at once. */
  credits: number
  heartbeatMs: number
  warmupMs: number
  measureMs: number
  quick: boolean
  write: boolean
}

/** What broker.json holds; broker.md is rendered from it. */
export interface BrokerResults {
  machine: MachineInfo
  argv: readonly string[]
  options: BrokerBenchOptions
  rows: BrokerBenchRow[]
}

interface Child {
  endpoint: string
  stop(): Promise<void>
}

async function forkWorker(args: string[]): Promise<Child> {
  const child: ChildProcess = fork(WORKER, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const endpoint = await new Promise<string>((resolve, reject) => {
    child.once('message', (m: { endpoint?: string; error?: string }) => (m.endpoint !== undefined ? resolve(m.endpoint) : reject(new Error(m.error ?? 'no endpoint'))))
    child.once('exit', (code) => reject(new Error(`worker exited with ${String(code)}`)))
  })
  return {
    endpoint,
    async stop() {
      if (child.connected) child.send('stop')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    },
  }
}

/** Where a phase's row goes as soon as it is measured (printed, collected). */
type OnRow = (row: BrokerBenchRow) => void

function toRow(system: BrokerBenchRow['system'], workers: number, payload: number, r: PhaseResult): BrokerBenchRow {
  return {
    system,
    workers,
    window: r.window,
    payload,
    callsPerSecond: Math.round(r.callsPerSec),
    p50Us: Math.round(r.p50Us),
    p99Us: Math.round(r.p99Us),
    errors: r.errors,
    ...(r.firstError !== undefined && { firstError: r.firstError }),
  }
}

/** Every payload x window phase of one system that is up; `callFor(payload)` gives its call. */
async function phases(system: BrokerBenchRow['system'], workers: number, o: BrokerBenchOptions, callFor: (payload: number) => CallFn, onRow: OnRow): Promise<BrokerBenchRow[]> {
  const rows: BrokerBenchRow[] = []
  for (const payload of o.payloads) {
    const call = callFor(payload)
    for (const window of o.windows) {
      const row = toRow(system, workers, payload, await runPhase(call, { window, warmupMs: o.warmupMs, measureMs: o.measureMs }))
      rows.push(row)
      onRow(row)
    }
  }
  return rows
}

/** Throws unless the echo came back as long as what was sent, so runPhase counts it as an error. */
function checkEcho(received: number, sent: number): void {
  if (received !== sent) throw new Error(`echo of ${received} bytes, sent ${sent}`)
}

/** A zrpc echo call of `payload` characters (one byte each in UTF-8). */
function zrpcCall(echo: { echo(p: { data: string }): Promise<string> }, payload: number): CallFn {
  const data = 'x'.repeat(payload)
  return async () => checkEcho((await echo.echo({ data })).length, payload)
}

async function lbbroker(workers: number, o: BrokerBenchOptions, onRow: OnRow): Promise<BrokerBenchRow[]> {
  const broker = new LoadBalancingBroker()
  const { frontend, backend } = await broker.bind('tcp://127.0.0.1:*', 'tcp://127.0.0.1:*')
  const children = await Promise.all(Array.from({ length: workers }, () => forkWorker(['lb', backend])))
  // A REQ client takes one call at a time, so each call borrows an idle one; runPhase keeps at most
  // `window` calls in flight, so the pool never grows past the largest window.
  const clients: LoadBalancingClient[] = []
  const idle: LoadBalancingClient[] = []
  const borrow = (): LoadBalancingClient => {
    const client = idle.pop()
    if (client !== undefined) return client
    const fresh = new LoadBalancingClient(frontend)
    clients.push(fresh)
    return fresh
  }
  try {
    while (broker.idleWorkers < workers) await new Promise((resolve) => setTimeout(resolve, 10))
    return await phases('lbbroker', workers, o, (payload) => {
      const body = Buffer.from('x'.repeat(payload))
      return async () => {
        const client = borrow()
        // A REQ socket whose call failed may be stuck mid lock-step: only a clean one goes back.
        const reply = await client.request(body)
        idle.push(client)
        checkEcho(reply.reduce((n, frame) => n + frame.length, 0), payload)
      }
    }, onRow)
  } finally {
    for (const client of clients) client.close()
    await Promise.all(children.map((c) => c.stop()))
    await broker.close()
  }
}

async function rawCredit(workers: number, o: BrokerBenchOptions, onRow: OnRow): Promise<BrokerBenchRow[]> {
  const broker = new RawCreditBroker()
  const { frontend, backend } = await broker.bind()
  const children = await Promise.all(Array.from({ length: workers }, () => forkWorker(['credit', backend, String(o.heartbeatMs), String(o.credits)])))
  const client = new RawCreditClient(frontend)
  try {
    while (broker.announced < workers * o.credits) await new Promise((resolve) => setTimeout(resolve, 10))
    return await phases('raw-credit', workers, o, (payload) => {
      const body = Buffer.from('x'.repeat(payload))
      return async () => checkEcho((await client.request(body)).length, payload)
    }, onRow)
  } finally {
    await client.close()
    await Promise.all(children.map((c) => c.stop()))
    await broker.close()
  }
}

async function zrpcBroker(workers: number, o: BrokerBenchOptions, onRow: OnRow): Promise<BrokerBenchRow[]> {
  const broker = new Broker({ heartbeatMs: o.heartbeatMs })
  const [endpoint] = (await broker.bind('tcp://127.0.0.1:*')) as [string]
  // Each worker process takes as many requests at once as each raw-credit worker does.
  const children = await Promise.all(Array.from({ length: workers }, () => forkWorker(['zrpc', endpoint, String(o.heartbeatMs), String(o.credits)])))
  const client = new RpcClient({ broker: endpoint })
  try {
    while ((broker.stats().services['echo']?.workers ?? 0) < workers) await new Promise((resolve) => setTimeout(resolve, 10))
    const echo = client.service(Echo)
    return await phases('zrpc-broker', workers, o, (payload) => zrpcCall(echo, payload), onRow)
  } finally {
    await client.close()
    await Promise.all(children.map((c) => c.stop()))
    await broker.close()
  }
}

/**
 * One server process whose worker takes `concurrency` requests at once, each call waiting ioDelayMs first (an I/O-bound
 * handler): what connectBroker's concurrency buys.
 */
async function zrpcConcurrency(o: BrokerBenchOptions, onRow: OnRow): Promise<BrokerBenchRow[]> {
  const rows: BrokerBenchRow[] = []
  for (const concurrency of o.concurrencies) {
    const broker = new Broker({ heartbeatMs: o.heartbeatMs })
    const [endpoint] = (await broker.bind('tcp://127.0.0.1:*')) as [string]
    const child = await forkWorker(['zrpc', endpoint, String(o.heartbeatMs), String(concurrency), String(o.ioDelayMs)])
    const client = new RpcClient({ broker: endpoint })
    try {
      while ((broker.stats().workerList[0]?.credit ?? 0) < concurrency) await new Promise((resolve) => setTimeout(resolve, 10))
      const echo = client.service(Echo)
      for (const payload of o.payloads) {
        const result = await runPhase(zrpcCall(echo, payload), { window: o.ioWindow, warmupMs: o.warmupMs, measureMs: o.measureMs })
        const row = { ...toRow('zrpc-broker-io', 1, payload, result), concurrency }
        rows.push(row)
        onRow(row)
      }
    } finally {
      await client.close()
      await child.stop()
      await broker.close()
    }
  }
  return rows
}

async function zrpcDirect(o: BrokerBenchOptions, onRow: OnRow): Promise<BrokerBenchRow[]> {
  const server = await forkWorker(['direct', 'tcp://127.0.0.1:*'])
  const client = new RpcClient({ connect: server.endpoint })
  try {
    const echo = client.service(Echo)
    return await phases('zrpc-direct', 1, o, (payload) => zrpcCall(echo, payload), onRow)
  } finally {
    await client.close()
    await server.stop()
  }
}

const flag = (argv: readonly string[], name: string): string | undefined => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)

/** Reads the flags; defaults keep a full run (3 worker counts, 3 windows, 2 payloads) to about 3 minutes on 2 cores. */
export function parseOptions(argv: readonly string[]): BrokerBenchOptions {
  const quick = argv.includes('--quick')
  const list = (name: string, fallback: number[]): number[] => {
    const text = flag(argv, name)
    if (text === undefined) return fallback
    const values = text.split(',').map(Number)
    if (values.some((v) => !(Number.isInteger(v) && v > 0))) throw new Error(`--${name} needs positive integers, got ${text}`)
    return values
  }
  const ms = (name: string, fallback: number): number => {
    const text = flag(argv, name)
    if (text === undefined) return fallback
    const value = Number(text)
    if (!(Number.isFinite(value) && value >= 0)) throw new Error(`--${name} needs a non-negative number of ms, got ${text}`)
    return value
  }
  const measureMs = Math.max(1, ms('duration', quick ? 300 : 1500))
  return {
    workers: list('workers', [1, 2, 4]),
    windows: list('windows', [1, 16, 256]),
    payloads: list('payloads', [64, 4096]),
    concurrencies: list('concurrency', [1, 8]),
    ioWindow: IO_WINDOW,
    ioDelayMs: IO_DELAY_MS,
    credits: DEFAULT_CREDITS,
    heartbeatMs: HEARTBEAT_MS,
    // A third of the measured time, as before: enough for the connections and the JIT to settle.
    warmupMs: ms('warmup-ms', Math.round(measureMs / 3)),
    measureMs,
    quick,
    write: argv.includes('--write'),
  }
}

/** Where a full run writes its files (from dist/benchmarks/ back to the source tree). */
const RESULTS = new URL('../../benchmarks/results/', import.meta.url)

/** Runs every phase, printing one line each, then the ratios, aims and table; with --write, writes broker.json and broker.md. */
export async function main(argv: readonly string[] = [], print: (line: string) => void = (l) => console.log(l), machine: MachineInfo = machineInfo()): Promise<BrokerBenchRow[]> {
  const o = parseOptions(argv)
  const rows = await measureAll(o, print)
  print(`\n${brokerTable(rows)}\n`)
  if (o.write) {
    mkdirSync(RESULTS, { recursive: true })
    const json = new URL('broker.json', RESULTS)
    const results: BrokerResults = { machine, argv, options: o, rows }
    writeFileSync(json, `${JSON.stringify(results, null, 2)}\n`)
    print(`I: wrote ${fileURLToPath(json)}`)
    // Rendered from the file just written, so broker.md shows exactly what broker.json holds.
    const markdown = new URL('broker.md', RESULTS)
    writeFileSync(markdown, brokerMarkdown(JSON.parse(readFileSync(json, 'utf8')) as BrokerResults))
    print(`I: wrote ${fileURLToPath(markdown)}`)
  }
  return rows
}

function showRow(r: BrokerBenchRow, o: BrokerBenchOptions): string {
  const errors = r.errors > 0 ? `  ERRORS ${r.errors} (${r.firstError ?? ''})` : ''
  if (r.system === 'zrpc-broker-io') return `${formatIoRow(r, o.ioDelayMs)}${errors}`
  return (
    `${r.system.padEnd(12)} workers=${r.workers} window=${String(r.window).padEnd(3)} payload=${formatBytes(r.payload).padEnd(6)} ` +
    `${formatRate(r.callsPerSecond).padStart(6)} calls/s  p50 ${formatLatency(r.p50Us).padStart(9)}  p99 ${formatLatency(r.p99Us).padStart(9)}${errors}`
  )
}

async function measureAll(o: BrokerBenchOptions, print: (line: string) => void): Promise<BrokerBenchRow[]> {
  const phaseCount = o.payloads.length * (o.windows.length * (1 + 3 * o.workers.length) + o.concurrencies.length)
  print(
    `I: broker: workers ${o.workers.join(',')}; in flight ${o.windows.join(',')}; payloads ${o.payloads.map(formatBytes).join(', ')}; ` +
      `${phaseCount} phases of ${o.warmupMs} + ${o.measureMs} ms (~${Math.ceil((phaseCount * (o.warmupMs + o.measureMs)) / 1000)} s, plus starting workers)`,
  )
  const rows: BrokerBenchRow[] = []
  const onRow = (row: BrokerBenchRow): void => {
    rows.push(row)
    print(showRow(row, o))
  }
  await zrpcDirect(o, onRow)
  for (const workers of o.workers) {
    await lbbroker(workers, o, onRow)
    await rawCredit(workers, o, onRow)
    await zrpcBroker(workers, o, onRow)
  }
  await zrpcConcurrency(o, onRow)
  for (const payload of o.payloads) {
    for (const workers of o.workers) {
      for (const window of o.windows) {
        const find = (system: BrokerBenchRow['system']): BrokerBenchRow | undefined =>
          rows.find((r) => r.system === system && r.workers === workers && r.window === window && r.payload === payload)
        const typed = find('zrpc-broker')
        const raw = find('lbbroker')
        const credit = find('raw-credit')
        const where = `workers=${workers} window=${window} payload=${formatBytes(payload)}`
        if (raw && typed && raw.callsPerSecond > 0) print(`ratio zrpc-broker/lbbroker ${where}: ${((100 * typed.callsPerSecond) / raw.callsPerSecond).toFixed(0)}%`)
        if (credit && typed && credit.callsPerSecond > 0) print(`ratio zrpc-broker/raw-credit ${where}: ${(typed.callsPerSecond / credit.callsPerSecond).toFixed(2)}x`)
      }
    }
  }
  for (const aim of brokerAims(rows)) print(formatAim(aim))
  return rows
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    () => setTimeout(() => process.exit(0), 2000).unref(),
    (err: unknown) => {
      console.error(`E: ${String(err)}`)
      process.exit(1)
    },
  )
}
