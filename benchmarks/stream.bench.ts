/**
 * Question: how many stream items per second does zrpc deliver, next to unary calls per second, direct and
 * through the broker, in the same run? The headline is the ratio items/s ÷ calls/s: a stream item should cost
 * far less than a call (no request, no per-item reply routing, one CREDIT per half window).
 *
 * One echo server process (benchmarks/broker/worker-main.js) per mode, bound to 127.0.0.1:
 * - direct: an RpcServer bound to an ephemeral port; one RpcClient in this process connected to it.
 * - broker: a zrpc Broker in this process (as broker.bench.ts), one worker process attached with
 *   `connectBroker(ep, { concurrency: 16 })` (`--concurrency`), one RpcClient({ broker }) in this process.
 * In each mode, in one run:
 * - unary: 64 B and 4 KiB echo calls kept at `--in-flight` (default 256) in flight (harness/load.ts runPhase):
 *   calls/s, p50, p99;
 * - stream: `Echo.items({ count, size })`, a server stream of `--items` (default 10 000) strings of 64 B (and
 *   one case of 4 KiB), read with `for await` at window 16 and 256, by one reader and by `--streams` (default 8)
 *   readers at once. Each reader opens one stream after another; a phase is a warm-up then a measured window,
 *   as runPhase's: items/s = items taken by the loops inside the window ÷ its length. At the end of the window
 *   each reader leaves its loop (which cancels its stream at the server); a stream that ended by itself must
 *   have brought exactly `count` items of the right size, or it counts as an error. Through the broker, after
 *   each stream phase the bench waits for the worker to hold no call (the cancels reached it).
 * The ratio column: a stream row's items/s ÷ the unary calls/s of the same mode and item size, this run.
 *
 *   node dist/benchmarks/run.js stream [--quick] [--items=10000] [--streams=8] [--in-flight=256]
 *     [--concurrency=16] [--modes=direct,broker] [--measure-ms=2000] [--warmup-ms=500] [--write]
 *
 * A full run (the runner passes --write) writes benchmarks/results/stream.json (machine, argv, options, rows)
 * and renders benchmarks/results/stream.md from it; --quick writes nothing.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import { Broker, RpcClient, type ServiceClient } from '../lib/index.js'
import { Echo } from './broker/echo.js'
import { forkServer, type ForkedServer } from './harness/child.js'
import { formatBytes, formatLatency, formatRate, formatRatio } from './harness/format.js'
import { runPhase } from './harness/load.js'
import { describeMachine, machineInfo, type MachineInfo } from './harness/machine.js'
import { Progress, verboseFlag } from './harness/progress.js'

const WORKER = fileURLToPath(new URL('./broker/worker-main.js', import.meta.url))
/** Where a full run writes its files (from dist/benchmarks/ back to the source tree). */
const RESULTS = new URL('../../benchmarks/results/', import.meta.url)
const HEARTBEAT_MS = 1000
/** Requests the broker worker process takes at once (`--concurrency`). */
const CONCURRENCY = 16
/** How long a stream phase may go on after its window before it counts as stalled and is cancelled. */
const STALL_MS = 15_000

type Mode = 'direct' | 'broker'
type EchoClient = ServiceClient<typeof Echo>

export interface StreamRow {
  readonly mode: Mode
  readonly kind: 'unary' | 'stream'
  /** Bytes echoed per call, or per item. */
  readonly payload: number
  /** unary: calls in flight; stream: the window each reader grants. */
  readonly window: number
  /** Readers at once (stream rows; 0 for unary). */
  readonly streams: number
  /** calls/s (unary) or items/s over all readers (stream). */
  readonly perSec: number
  /** unary rows: round trip, microseconds, nearest rank. */
  readonly p50Us?: number
  readonly p99Us?: number
  /** stream rows: streams that ended by themselves inside the phase (each with exactly `items` items). */
  readonly streamsDone?: number
  /** stream rows: items/s ÷ the unary calls/s of the same mode and payload, this run. */
  readonly ratio?: number
  /** Calls or streams that failed, over the phase (a stream of the wrong length counts). */
  readonly errors: number
  readonly firstError?: string
}

export interface StreamBenchOptions {
  readonly quick: boolean
  readonly write: boolean
  readonly warmupMs: number
  readonly measureMs: number
  /** Items per stream. */
  readonly items: number
  /** Readers at once in the "several streams" phases. */
  readonly streams: number
  /** Unary calls in flight. */
  readonly inFlight: number
  readonly concurrency: number
  /** Which modes run, in this order. */
  readonly modes: readonly Mode[]
}

/** What stream.json holds; stream.md is rendered from it. */
export interface StreamResults {
  readonly machine: MachineInfo
  readonly argv: readonly string[]
  readonly options: StreamBenchOptions
  readonly rows: readonly StreamRow[]
}

/** One phase of a mode, in the order they run. */
type Phase = { readonly kind: 'unary'; readonly payload: number } | { readonly kind: 'stream'; readonly payload: number; readonly window: number; readonly streams: number }

export function phasesOf(o: StreamBenchOptions): Phase[] {
  return [
    { kind: 'unary', payload: 64 },
    { kind: 'stream', payload: 64, window: 16, streams: 1 },
    { kind: 'stream', payload: 64, window: 256, streams: 1 },
    { kind: 'stream', payload: 64, window: 16, streams: o.streams },
    { kind: 'stream', payload: 64, window: 256, streams: o.streams },
    { kind: 'unary', payload: 4096 },
    { kind: 'stream', payload: 4096, window: 256, streams: 1 },
  ]
}

const flag = (argv: readonly string[], name: string): string | undefined => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)

function modes(text: string): Mode[] {
  const list = text.split(',')
  for (const m of list) if (m !== 'direct' && m !== 'broker') throw new Error(`--modes takes direct and broker, got ${text}`)
  return list as Mode[]
}

export function parseOptions(argv: readonly string[]): StreamBenchOptions {
  const quick = argv.includes('--quick')
  const num = (name: string, fallback: number, min: number): number => {
    const text = flag(argv, name)
    if (text === undefined) return fallback
    const value = Number(text)
    if (!(Number.isInteger(value) && value >= min)) throw new Error(`--${name} needs an integer of at least ${min}, got ${text}`)
    return value
  }
  return {
    quick,
    write: argv.includes('--write') && !quick,
    warmupMs: num('warmup-ms', quick ? 100 : 500, 0),
    measureMs: num('measure-ms', quick ? 300 : 2000, 1),
    items: num('items', quick ? 2000 : 10_000, 1),
    streams: num('streams', 8, 1),
    inFlight: num('in-flight', 256, 1),
    concurrency: num('concurrency', CONCURRENCY, 1),
    modes: modes(flag(argv, 'modes') ?? 'direct,broker'),
  }
}

interface StreamPhaseResult {
  readonly itemsPerSec: number
  readonly streamsDone: number
  readonly errors: number
  readonly firstError?: string
}

/**
 * `streams` readers, each opening one stream of `items` items after another until the window ends; counts the items
 * the loops take inside the window. A reader leaves its loop at the first item after the window (cancelling its stream).
 */
async function streamPhase(echo: EchoClient, p: { payload: number; window: number; streams: number }, o: StreamBenchOptions): Promise<StreamPhaseResult> {
  const measureStart = performance.now() + o.warmupMs
  const measureEnd = measureStart + o.measureMs
  const stop = new AbortController()
  let received = 0
  let streamsDone = 0
  let errors = 0
  let firstError: string | undefined
  const fail = (message: string): void => {
    errors++
    firstError ??= message
  }
  const reader = async (): Promise<void> => {
    while (performance.now() < measureEnd && !stop.signal.aborted) {
      let n = 0
      let left = false
      try {
        for await (const item of echo.items({ count: o.items, size: p.payload }, { window: p.window, timeoutMs: 60_000, signal: stop.signal })) {
          if (item.length !== p.payload) throw new Error(`an item of ${item.length} bytes, asked for ${p.payload}`)
          n++
          const t = performance.now()
          if (t > measureEnd) {
            left = true
            break
          }
          if (t >= measureStart) received++
        }
      } catch (err) {
        fail(err instanceof Error ? `${err.name}: ${err.message}` : String(err))
        await new Promise((resolve) => setImmediate(resolve))
        continue
      }
      if (left) continue
      if (n === o.items) streamsDone++
      else fail(`a stream of ${o.items} items ended after ${n}`)
    }
  }
  const stalled = setTimeout(() => {
    fail(`stalled: still reading ${STALL_MS} ms after the window; cancelled`)
    stop.abort()
  }, o.warmupMs + o.measureMs + STALL_MS)
  try {
    await Promise.all(Array.from({ length: p.streams }, reader))
  } finally {
    clearTimeout(stalled)
  }
  return { itemsPerSec: received / (o.measureMs / 1000), streamsDone, errors, ...(firstError !== undefined && { firstError }) }
}

/** Runs every phase of one mode against `echo`; `settle` runs after each stream phase (through the broker: the worker is free). */
async function measureMode(mode: Mode, echo: EchoClient, o: StreamBenchOptions, settle: () => Promise<string | undefined>, onRow: (row: StreamRow) => void): Promise<void> {
  const unary = new Map<number, number>()
  for (const phase of phasesOf(o)) {
    if (phase.kind === 'unary') {
      const data = 'x'.repeat(phase.payload)
      const result = await runPhase(
        async () => {
          const reply = await echo.echo({ data })
          if (reply.length !== data.length) throw new Error(`echo of ${reply.length} bytes, sent ${data.length}`)
        },
        { window: o.inFlight, warmupMs: o.warmupMs, measureMs: o.measureMs },
      )
      unary.set(phase.payload, result.callsPerSec)
      onRow({
        mode, kind: 'unary', payload: phase.payload, window: o.inFlight, streams: 0, perSec: Math.round(result.callsPerSec),
        p50Us: Math.round(result.p50Us), p99Us: Math.round(result.p99Us), errors: result.errors,
        ...(result.firstError !== undefined && { firstError: result.firstError }),
      })
      continue
    }
    const result = await streamPhase(echo, phase, o)
    const unsettled = await settle()
    const calls = unary.get(phase.payload)
    const firstError = result.firstError ?? unsettled
    onRow({
      mode, kind: 'stream', payload: phase.payload, window: phase.window, streams: phase.streams, perSec: Math.round(result.itemsPerSec),
      streamsDone: result.streamsDone, ...(calls !== undefined && calls > 0 && { ratio: result.itemsPerSec / calls }),
      errors: result.errors + (unsettled === undefined ? 0 : 1),
      ...(firstError !== undefined && { firstError }),
    })
  }
}

async function direct(o: StreamBenchOptions, onRow: (row: StreamRow) => void): Promise<void> {
  const server = await forkServer(WORKER, ['direct', 'tcp://127.0.0.1:*'])
  const client = new RpcClient({ connect: server.endpoint, timeoutMs: 30_000 })
  try {
    await measureMode('direct', client.service(Echo), o, async () => undefined, onRow)
  } finally {
    await client.close()
    await server.stop()
  }
}

async function until(done: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (!done()) {
    if (Date.now() > end) return false
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return true
}

async function throughBroker(o: StreamBenchOptions, onRow: (row: StreamRow) => void): Promise<void> {
  const broker = new Broker({ heartbeatMs: HEARTBEAT_MS })
  let worker: ForkedServer | undefined
  let client: RpcClient | undefined
  try {
    const [endpoint] = (await broker.bind('tcp://127.0.0.1:*')) as [string]
    worker = await forkServer(WORKER, ['zrpc', endpoint, String(HEARTBEAT_MS), String(o.concurrency)])
    if (!(await until(() => (broker.stats().workerList[0]?.credit ?? 0) >= o.concurrency, 10_000))) throw new Error('the broker worker did not announce its credit')
    client = new RpcClient({ broker: endpoint, timeoutMs: 30_000 })
    // After a stream phase every reader has left its loop; the cancels must reach the worker and free it.
    const settle = async (): Promise<string | undefined> => {
      const free = await until(() => (broker.stats().services['echo']?.inFlight ?? 0) === 0, 5000)
      return free ? undefined : `the worker still held ${broker.stats().services['echo']?.inFlight ?? '?'} calls 5 s after the phase`
    }
    await measureMode('broker', client.service(Echo), o, settle, onRow)
  } finally {
    await client?.close()
    await worker?.stop()
    await broker.close()
  }
}

/** One line per phase, as it is measured. */
export function formatRow(r: StreamRow): string {
  const errors = r.errors > 0 ? `  ERRORS ${r.errors} (${r.firstError ?? ''})` : ''
  const head = `${r.mode.padEnd(6)} ${formatBytes(r.payload).padEnd(6)}`
  if (r.kind === 'unary') {
    return `${head} unary  ${String(r.window).padStart(3)} in flight        ${formatRate(r.perSec).padStart(6)} calls/s  p50 ${formatLatency(r.p50Us ?? Number.NaN).padStart(9)}  p99 ${formatLatency(r.p99Us ?? Number.NaN).padStart(9)}${errors}`
  }
  return (
    `${head} stream ${String(r.streams).padStart(2)} x window ${String(r.window).padEnd(3)} ${formatRate(r.perSec).padStart(6)} items/s  ` +
    `${formatRatio(r.ratio).padStart(6)} of calls/s  ${r.streamsDone ?? 0} streams done${errors}`
  )
}

function what(r: StreamRow): string {
  return r.kind === 'unary' ? `unary, ${r.window} in flight` : `${r.streams} stream${r.streams > 1 ? 's' : ''}, window ${r.window}`
}

/** The table printed at the end and kept in stream.md. */
export function streamTable(rows: readonly StreamRow[]): string {
  const lines = ['| mode | payload | what | calls/s or items/s | items/s ÷ calls/s | p50 | p99 | streams done | errors |', '|---|---|---|---:|---:|---:|---:|---:|---:|']
  for (const r of rows) {
    const latency = (us: number | undefined): string => (us === undefined ? '' : formatLatency(us))
    lines.push(
      `| ${r.mode} | ${formatBytes(r.payload)} | ${what(r)} | ${formatRate(r.perSec)} ${r.kind === 'unary' ? 'calls/s' : 'items/s'} | ${formatRatio(r.ratio)} | ` +
        `${latency(r.p50Us)} | ${latency(r.p99Us)} | ${r.streamsDone ?? ''} | ${r.errors} |`,
    )
  }
  return lines.join('\n')
}

/** results/stream.md, rendered from stream.json. */
export function streamMarkdown(results: StreamResults): string {
  const o = results.options
  return [
    '# Server streams next to unary calls',
    '',
    'Generated by `node dist/benchmarks/run.js stream` from stream.json; do not edit by hand.',
    '',
    `Machine: ${describeMachine(results.machine)}`,
    '',
    `One echo server process on 127.0.0.1 per mode: direct (one RpcClient connected to it) and through a zrpc Broker in the bench process ` +
      `(one worker process, \`connectBroker\` concurrency ${o.concurrency}). Unary: 64 B and 4 KiB echo calls, ${o.inFlight} in flight, closed loop. ` +
      `Stream: \`for await\` over server streams of ${o.items} strings each, readers opening one stream after another; items/s = items the loops ` +
      `took inside the measured window. Per phase ${o.warmupMs} ms warm-up + ${o.measureMs} ms measured. ` +
      'items/s ÷ calls/s: a stream row against the unary row of the same mode and payload, this run.',
    '',
    streamTable(results.rows),
    '',
  ].join('\n')
}

/** Runs both modes, printing a line per phase, then the table; with --write (not --quick), writes stream.json and stream.md. */
export async function main(argv: readonly string[] = [], print?: (line: string) => void, machine: MachineInfo = machineInfo()): Promise<StreamRow[]> {
  const o = parseOptions(argv)
  const progress = new Progress(process.stdout, verboseFlag(argv))
  const out = print ?? ((line: string) => progress.result(line))
  const phases = o.modes.length * phasesOf(o).length
  const rows: StreamRow[] = []
  const started = Date.now()
  const onRow = (row: StreamRow): void => {
    rows.push(row)
    out(formatRow(row))
    if (print === undefined) {
      const left = ((Date.now() - started) / rows.length) * (phases - rows.length)
      progress.update(`stream ${rows.length}/${phases} phases, ~${Math.ceil(left / 1000)} s left`)
    }
  }
  out(
    `I: stream: ${phases} phases of ${o.warmupMs} + ${o.measureMs} ms (~${Math.ceil((phases * (o.warmupMs + o.measureMs)) / 1000)} s, plus starting processes); ` +
      `${o.items} items per stream, ${o.streams} streams at once, unary ${o.inFlight} in flight`,
  )
  try {
    for (const mode of o.modes) await (mode === 'direct' ? direct(o, onRow) : throughBroker(o, onRow))
  } finally {
    progress.done()
  }
  out(`\n${streamTable(rows)}\n`)
  if (o.write) {
    mkdirSync(RESULTS, { recursive: true })
    const json = new URL('stream.json', RESULTS)
    const results: StreamResults = { machine, argv, options: o, rows }
    writeFileSync(json, `${JSON.stringify(results, null, 2)}\n`)
    out(`I: wrote ${fileURLToPath(json)}`)
    // Rendered from the file just written, so stream.md shows exactly what stream.json holds.
    const markdown = new URL('stream.md', RESULTS)
    writeFileSync(markdown, streamMarkdown(JSON.parse(readFileSync(json, 'utf8')) as StreamResults))
    out(`I: wrote ${fileURLToPath(markdown)}`)
  }
  const errors = rows.reduce((n, r) => n + r.errors, 0)
  if (errors > 0) console.error(`W: ${errors} calls or streams failed; see the errors column`)
  return rows
}
