/**
 * Question: what does the durable broker cost? Calls through a zrpc Broker that keeps every accepted call
 * on disk (`new Broker({ durable: { dir, sync } })`), next to the same broker in memory, in one run.
 *
 * The Broker runs in this process (as in broker.bench.ts), bound to 127.0.0.1; 2 echo worker processes
 * (benchmarks/broker/worker-main.js) attach with `connectBroker(ep, { concurrency: 32 })` (`--workers`,
 * `--concurrency`); one RpcClient({ broker }) in this process. Every phase gets a fresh broker, fresh workers
 * and, for a durable store, a fresh directory under os.tmpdir() (removed after the phase). Stores (`--stores`):
 * `memory` (no `durable`), `always` (fdatasync per group commit, the default), `batch` (fdatasync at most every
 * 10 ms), `none` (write(2) only: the OS cache); `-idempotent` calls `Echo.echoIdempotent` (the same echo marked
 * `idempotent: true`) instead of `Echo.echo`, which is not idempotent, so that a durable broker writes it once
 * instead of twice (accepted, then sent before a worker gets it). Unary calls fail after `--call-timeout-ms`
 * (default 2000), so a phase that stalls still ends, with errors.
 * - unary: 64 B echo calls kept at `--windows` in flight (default 16 and 256; harness/load.ts runPhase):
 *   calls/s, p50, p99, and calls/s and p99 ÷ the in-memory row of the same window.
 * - deferred: `client.queue(Echo).echo`: `--tickets` submits (default 20 000) kept at `--ticket-window` in flight
 *   (default 64), then every ticket collected (`waitMs` 30 s) at the same window, after an unmeasured warm-up
 *   round of a fifth as many; in memory and durable `always`: submits/s, collects/s and tickets/s = tickets ÷
 *   (submit time + collect time), and the submit's p50 and p99.
 * After each durable phase, once the broker holds no call in flight, the journal's counters
 * (`broker.stats().durable.journal`): fsyncs, writes (one per group commit) and bytes appended, over the phase's
 * calls or tickets (warm-up included for unary; the measured tickets only for deferred). A delivered unary
 * answer stays on record 5 s (DELIVERED_GRACE_MS) before its delete record, so those deletes fall mostly after
 * the phase and are not counted; a collected ticket's delete is.
 *
 *   node dist/benchmarks/run.js queue [--quick] [--windows=16,256]
 *     [--stores=memory,always,batch,none,always-idempotent]
 *     [--tickets=20000] [--ticket-window=64] [--deferred-stores=memory,always] [--workers=2] [--concurrency=32]
 *     [--measure-ms=2000] [--warmup-ms=500] [--call-timeout-ms=2000] [--write]
 *
 * A full run (the runner passes --write) writes benchmarks/results/queue.json (machine, argv, options, rows)
 * and renders benchmarks/results/queue.md from it; --quick writes nothing.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { Broker, RpcClient, type QueueClient } from '../lib/index.js'
import type { DurableStats } from '../lib/broker/durable.js'
import { Echo } from './broker/echo.js'
import { DEFAULT_CREDITS } from './broker/raw-credit.js'
import { forkServer, type ForkedServer } from './harness/child.js'
import { formatLatency, formatRate, formatRatio } from './harness/format.js'
import { nearestRank, runPhase } from './harness/load.js'
import { describeMachine, machineInfo, type MachineInfo } from './harness/machine.js'
import { Progress, verboseFlag } from './harness/progress.js'

const WORKER = fileURLToPath(new URL('./broker/worker-main.js', import.meta.url))
/** Where a full run writes its files (from dist/benchmarks/ back to the source tree). */
const RESULTS = new URL('../../benchmarks/results/', import.meta.url)
const HEARTBEAT_MS = 1000
const PAYLOAD = 64
/** How long a collect waits for its call to end. */
const COLLECT_WAIT_MS = 30_000
/** How long a deferred round may take past its expected length before it counts as stalled. */
const STALL_MS = 30_000

/**
 * Where the broker keeps its calls, in memory or on disk with one of the journal's sync modes, and which echo
 * method is called: `memory`, or `<sync>[-idempotent]`.
 */
export type Store = string
export type DeferredStore = 'memory' | 'always'
export interface StoreSpec {
  readonly sync: 'memory' | 'always' | 'batch' | 'none'
  readonly idempotent: boolean
}
const DEFAULT_STORES: readonly Store[] = ['memory', 'always', 'batch', 'none', 'always-idempotent']

export function storeSpec(store: Store): StoreSpec {
  if (store === 'memory') return { sync: 'memory', idempotent: false }
  const m = /^(always|batch|none)(-idempotent)?$/.exec(store)
  if (m === null) throw new Error(`a store is memory or <always|batch|none>[-idempotent], got ${JSON.stringify(store)}`)
  return { sync: m[1] as StoreSpec['sync'], idempotent: m[2] !== undefined }
}

/** The journal's counters over one phase, and per call (unary) or per ticket (deferred). */
export interface JournalFigures {
  /** Calls (or tickets) the counters are divided by. */
  readonly calls: number
  readonly writes: number
  readonly syncs: number
  readonly bytesWritten: number
  readonly compactions: number
  /** Size of the journal file at the end of the phase. */
  readonly fileBytes: number
  readonly syncsPerCall: number
  readonly writesPerCall: number
  readonly bytesPerCall: number
}

export interface UnaryRow {
  readonly kind: 'unary'
  readonly store: Store
  readonly window: number
  readonly payload: number
  readonly callsPerSec: number
  /** Round trip, microseconds, nearest rank. */
  readonly p50Us: number
  readonly p99Us: number
  /** calls/s and p99 ÷ those of the in-memory row of the same window, this run (durable rows). */
  readonly ratio?: number
  readonly p99Ratio?: number
  readonly errors: number
  readonly firstError?: string
  readonly journal?: JournalFigures
}

export interface DeferredRow {
  readonly kind: 'deferred'
  readonly store: DeferredStore
  /** Submits (and submits in flight) of the measured round. */
  readonly tickets: number
  readonly window: number
  readonly submitPerSec: number
  readonly collectPerSec: number
  /** tickets ÷ (submit time + collect time). */
  readonly ticketsPerSec: number
  /** Submit round trip (until the ticket is back), microseconds, nearest rank. */
  readonly submitP50Us: number
  readonly submitP99Us: number
  /** tickets/s ÷ the in-memory row's, this run (durable rows). */
  readonly ratio?: number
  readonly errors: number
  readonly firstError?: string
  readonly journal?: JournalFigures
}

export type QueueRow = UnaryRow | DeferredRow

export interface QueueBenchOptions {
  readonly quick: boolean
  readonly write: boolean
  readonly warmupMs: number
  readonly measureMs: number
  readonly windows: readonly number[]
  readonly stores: readonly Store[]
  readonly tickets: number
  readonly ticketWindow: number
  readonly deferredStores: readonly DeferredStore[]
  readonly workers: number
  readonly concurrency: number
  /** Budget of a unary call: a call the broker never dispatches fails after it, so a stalled phase ends. */
  readonly callTimeoutMs: number
}

/** What queue.json holds; queue.md is rendered from it. */
export interface QueueResults {
  readonly machine: MachineInfo
  readonly argv: readonly string[]
  readonly options: QueueBenchOptions
  readonly rows: readonly QueueRow[]
}

const flag = (argv: readonly string[], name: string): string | undefined => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)

function names<T extends string>(argv: readonly string[], name: string, known: readonly T[], fallback: readonly T[]): T[] {
  const text = flag(argv, name)
  if (text === undefined) return [...fallback]
  const list = text.split(',')
  for (const s of list) if (!(known as readonly string[]).includes(s)) throw new Error(`--${name} takes ${known.join(', ')}; got ${text}`)
  return list as T[]
}

export function parseOptions(argv: readonly string[]): QueueBenchOptions {
  const quick = argv.includes('--quick')
  const num = (name: string, fallback: number, min: number): number => {
    const text = flag(argv, name)
    if (text === undefined) return fallback
    const value = Number(text)
    if (!(Number.isInteger(value) && value >= min)) throw new Error(`--${name} needs an integer of at least ${min}, got ${text}`)
    return value
  }
  const windows = (flag(argv, 'windows') ?? '16,256').split(',').map(Number)
  if (windows.some((w) => !(Number.isInteger(w) && w > 0))) throw new Error(`--windows needs positive integers, got ${flag(argv, 'windows')}`)
  return {
    quick,
    write: argv.includes('--write') && !quick,
    warmupMs: num('warmup-ms', quick ? 100 : 500, 0),
    measureMs: num('measure-ms', quick ? 300 : 2000, 1),
    windows,
    stores: stores(flag(argv, 'stores')),
    tickets: num('tickets', quick ? 500 : 20_000, 1),
    ticketWindow: num('ticket-window', 64, 1),
    deferredStores: names<DeferredStore>(argv, 'deferred-stores', ['memory', 'always'], ['memory', 'always']),
    workers: num('workers', 2, 1),
    concurrency: num('concurrency', DEFAULT_CREDITS, 1),
    callTimeoutMs: num('call-timeout-ms', quick ? 1000 : 2000, 1),
  }
}

function stores(text: string | undefined): Store[] {
  if (text === undefined) return [...DEFAULT_STORES]
  const list = text.split(',')
  for (const store of list) storeSpec(store)
  return list
}

async function until(done: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (!done()) {
    if (Date.now() > end) return false
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return true
}

/** A broker of one store with its workers and one client, for one phase; `close` removes everything, the directory too. */
interface Rig {
  readonly broker: Broker
  readonly client: RpcClient
  close(): Promise<void>
}

async function startRig(store: Store, o: QueueBenchOptions, callTimeoutMs: number): Promise<Rig> {
  const { sync } = storeSpec(store)
  const dir = sync === 'memory' ? undefined : await mkdtemp(join(tmpdir(), 'zrpc-queue-bench-'))
  const broker = new Broker({ heartbeatMs: HEARTBEAT_MS, ...(dir !== undefined && sync !== 'memory' && { durable: { dir, sync } }) })
  const workers: ForkedServer[] = []
  let client: RpcClient | undefined
  const close = async (): Promise<void> => {
    await client?.close()
    await Promise.all(workers.map((w) => w.stop()))
    await broker.close()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  }
  try {
    const [endpoint] = (await broker.bind('tcp://127.0.0.1:*')) as [string]
    workers.push(...(await Promise.all(Array.from({ length: o.workers }, () => forkServer(WORKER, ['zrpc', endpoint, String(HEARTBEAT_MS), String(o.concurrency)])))))
    if (!(await until(() => (broker.stats().services['echo']?.workers ?? 0) >= o.workers, 10_000))) throw new Error(`${o.workers} workers did not join the broker within 10 s`)
    client = new RpcClient({ broker: endpoint, timeoutMs: callTimeoutMs })
    return { broker, client, close }
  } catch (err) {
    await close()
    throw err
  }
}

/** The journal's counters now, or undefined for a broker in memory. */
const durableStats = (broker: Broker): DurableStats | undefined => broker.stats().durable

/**
 * Waits until the durable broker holds no call that is not yet answered and delivered (the phase's last
 * answers are on record), then gives the counters since `before` over `calls`. Undefined in memory.
 */
async function journalFigures(broker: Broker, before: DurableStats | undefined, calls: number): Promise<JournalFigures | string | undefined> {
  if (before === undefined) return undefined
  const settled = await until(() => (durableStats(broker)?.calls ?? 0) === 0, 5000)
  // One more turn or two: the last answers' records are written on the turn after they came.
  await new Promise((resolve) => setTimeout(resolve, 20))
  const after = durableStats(broker)!
  if (!settled) return `the durable broker still held ${after.calls} calls 5 s after the phase`
  const writes = after.journal.writes - before.journal.writes
  const syncs = after.journal.syncs - before.journal.syncs
  const bytesWritten = after.journal.bytesWritten - before.journal.bytesWritten
  const per = (n: number): number => (calls > 0 ? n / calls : Number.NaN)
  return {
    calls, writes, syncs, bytesWritten, compactions: after.journal.compactions - before.journal.compactions, fileBytes: after.fileBytes,
    syncsPerCall: per(syncs), writesPerCall: per(writes), bytesPerCall: per(bytesWritten),
  }
}

/** One unary phase on a fresh broker of `store`. */
async function unaryPhase(store: Store, window: number, o: QueueBenchOptions): Promise<UnaryRow> {
  const rig = await startRig(store, o, o.callTimeoutMs)
  try {
    const echo = rig.client.service(Echo)
    const method = storeSpec(store).idempotent ? echo.echoIdempotent : echo.echo
    const data = 'x'.repeat(PAYLOAD)
    let calls = 0
    const before = durableStats(rig.broker)
    const result = await runPhase(
      async () => {
        const reply = await method({ data })
        if (reply.length !== data.length) throw new Error(`echo of ${reply.length} bytes, sent ${data.length}`)
        calls++
      },
      { window, warmupMs: o.warmupMs, measureMs: o.measureMs },
    )
    const journal = await journalFigures(rig.broker, before, calls)
    const firstError = result.firstError ?? (typeof journal === 'string' ? journal : undefined)
    return {
      kind: 'unary', store, window, payload: PAYLOAD, callsPerSec: Math.round(result.callsPerSec), p50Us: Math.round(result.p50Us), p99Us: Math.round(result.p99Us),
      errors: result.errors + (typeof journal === 'string' ? 1 : 0),
      ...(firstError !== undefined && { firstError }),
      ...(typeof journal === 'object' && { journal }),
    }
  } finally {
    await rig.close()
  }
}

interface Round {
  readonly elapsedMs: number
  /** Round trips of the tasks that succeeded, ms, sorted. */
  readonly latencies: Float64Array
  readonly errors: number
  readonly firstError?: string
}

/** Runs task(0..n-1) with at most `window` at once; fails past `limitMs` (a stalled round). */
async function round(n: number, window: number, limitMs: number, task: (i: number) => Promise<void>): Promise<Round> {
  const latencies = new Float64Array(n)
  let done = 0
  let next = 0
  let errors = 0
  let firstError: string | undefined
  const lane = async (): Promise<void> => {
    while (next < n) {
      const i = next++
      const t0 = performance.now()
      try {
        await task(i)
        latencies[done++] = performance.now() - t0
      } catch (err) {
        errors++
        firstError ??= err instanceof Error ? `${err.name}: ${err.message}` : String(err)
      }
    }
  }
  const start = performance.now()
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([
      Promise.all(Array.from({ length: Math.min(window, n) }, lane)),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`a round of ${n} did not finish within ${limitMs} ms (stalled)`)), limitMs))),
    ])
  } finally {
    clearTimeout(timer)
  }
  const elapsedMs = performance.now() - start
  return { elapsedMs, latencies: latencies.subarray(0, done).sort(), errors, ...(firstError !== undefined && { firstError }) }
}

/** Submits `n` echo calls, then collects every ticket; returns both rounds. */
async function submitCollect(queue: QueueClient<typeof Echo>, n: number, window: number): Promise<{ submit: Round; collect: Round }> {
  const data = 'x'.repeat(PAYLOAD)
  const tickets: string[] = []
  const submit = await round(n, window, STALL_MS + n, async (i) => {
    tickets[i] = await queue.echo.submit({ data })
  })
  const taken = tickets.filter((t) => t !== undefined)
  const collect = await round(taken.length, window, STALL_MS + COLLECT_WAIT_MS + n, async (i) => {
    const reply = await queue.echo.collect(taken[i]!, { waitMs: COLLECT_WAIT_MS })
    if (reply.length !== data.length) throw new Error(`collected an echo of ${reply.length} bytes, sent ${data.length}`)
  })
  return { submit, collect }
}

/** One deferred phase on a fresh broker of `store`: a warm-up round, then the measured one. */
async function deferredPhase(store: DeferredStore, o: QueueBenchOptions): Promise<DeferredRow> {
  // A submit waits for its write; a collect names its own budget.
  const rig = await startRig(store, o, 30_000)
  try {
    const jobs = rig.client.queue(Echo)
    await submitCollect(jobs, Math.max(1, Math.round(o.tickets / 5)), o.ticketWindow)
    const before = durableStats(rig.broker)
    const { submit, collect } = await submitCollect(jobs, o.tickets, o.ticketWindow)
    const journal = await journalFigures(rig.broker, before, o.tickets)
    const errors = submit.errors + collect.errors + (typeof journal === 'string' ? 1 : 0)
    const firstError = submit.firstError ?? collect.firstError ?? (typeof journal === 'string' ? journal : undefined)
    const rate = (count: number, ms: number): number => (ms > 0 ? Math.round(count / (ms / 1000)) : 0)
    return {
      kind: 'deferred', store, tickets: o.tickets, window: o.ticketWindow,
      submitPerSec: rate(submit.latencies.length, submit.elapsedMs),
      collectPerSec: rate(collect.latencies.length, collect.elapsedMs),
      ticketsPerSec: rate(collect.latencies.length, submit.elapsedMs + collect.elapsedMs),
      submitP50Us: Math.round(nearestRank(submit.latencies, 50) * 1000),
      submitP99Us: Math.round(nearestRank(submit.latencies, 99) * 1000),
      errors,
      ...(firstError !== undefined && { firstError }),
      ...(typeof journal === 'object' && { journal }),
    }
  } finally {
    await rig.close()
  }
}

/** Adds to each durable row its ratio to the in-memory row of the same window, this run. */
export function withRatios(rows: readonly QueueRow[]): QueueRow[] {
  return rows.map((r) => {
    if (r.store === 'memory') return r
    if (r.kind === 'unary') {
      const base = rows.find((b): b is UnaryRow => b.kind === 'unary' && b.store === 'memory' && b.window === r.window)
      if (base === undefined || base.callsPerSec <= 0) return r
      return { ...r, ratio: r.callsPerSec / base.callsPerSec, ...(base.p99Us > 0 && Number.isFinite(r.p99Us) && { p99Ratio: r.p99Us / base.p99Us }) }
    }
    const base = rows.find((b): b is DeferredRow => b.kind === 'deferred' && b.store === 'memory')
    if (base === undefined || base.ticketsPerSec <= 0) return r
    return { ...r, ratio: r.ticketsPerSec / base.ticketsPerSec }
  })
}

/** 'durable always, idempotent method' */
export function storeLabel(store: Store): string {
  const { sync, idempotent } = storeSpec(store)
  if (sync === 'memory') return 'in memory'
  return `durable ${sync}${idempotent ? ', idempotent method' : ''}`
}

const perCall = (n: number | undefined, digits: number): string => (n === undefined || !Number.isFinite(n) ? '' : n.toFixed(digits))

/** One line per phase, as it is measured. */
export function formatRow(r: QueueRow): string {
  const errors = r.errors > 0 ? `  ERRORS ${r.errors} (${r.firstError ?? ''})` : ''
  const j = r.journal
  const unit = r.kind === 'unary' ? 'call' : 'ticket'
  const journal =
    j === undefined ? ''
    : j.calls === 0 ? `  journal: ${j.syncs} fsyncs, ${j.writes} writes, ${j.bytesWritten} B, no ${unit} completed`
    : `  journal: ${perCall(j.syncsPerCall, 3)} fsyncs, ${perCall(j.writesPerCall, 3)} writes, ${perCall(j.bytesPerCall, 0)} B per ${unit}`
  if (r.kind === 'unary') {
    return (
      `unary    ${r.store.padEnd(26)} ${String(r.window).padStart(3)} in flight  ${formatRate(r.callsPerSec).padStart(6)} calls/s  ` +
      `p50 ${formatLatency(r.p50Us).padStart(9)}  p99 ${formatLatency(r.p99Us).padStart(9)}${journal}${errors}`
    )
  }
  return (
    `deferred ${r.store.padEnd(26)} ${String(r.window).padStart(3)} in flight  ${formatRate(r.ticketsPerSec).padStart(6)} tickets/s  ` +
    `(submit ${formatRate(r.submitPerSec)}/s, p99 ${formatLatency(r.submitP99Us)}; collect ${formatRate(r.collectPerSec)}/s)${journal}${errors}`
  )
}

/** The unary table: calls/s, latency and the journal per call, each durable row against in-memory. */
export function unaryTable(rows: readonly QueueRow[]): string {
  const lines = [
    '| broker | in flight | calls/s | ÷ in memory | p50 | p99 | p99 ÷ in memory | fsyncs/call | writes/call | journal B/call | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for (const r of rows) {
    if (r.kind !== 'unary') continue
    const j = r.journal
    lines.push(
      `| ${storeLabel(r.store)} | ${r.window} | ${formatRate(r.callsPerSec)} | ${formatRatio(r.ratio)} | ${formatLatency(r.p50Us)} | ${formatLatency(r.p99Us)} | ${formatRatio(r.p99Ratio)} | ` +
        `${perCall(j?.syncsPerCall, 3)} | ${perCall(j?.writesPerCall, 3)} | ${perCall(j?.bytesPerCall, 0)} | ${r.errors} |`,
    )
  }
  return lines.join('\n')
}

/** The deferred table: submit then collect, tickets/s against in-memory, the journal per ticket. */
export function deferredTable(rows: readonly QueueRow[]): string {
  const lines = [
    '| broker | tickets | in flight | submits/s | submit p50 | submit p99 | collects/s | tickets/s | ÷ in memory | fsyncs/ticket | writes/ticket | journal B/ticket | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for (const r of rows) {
    if (r.kind !== 'deferred') continue
    const j = r.journal
    lines.push(
      `| ${storeLabel(r.store)} | ${r.tickets} | ${r.window} | ${formatRate(r.submitPerSec)} | ${formatLatency(r.submitP50Us)} | ${formatLatency(r.submitP99Us)} | ${formatRate(r.collectPerSec)} | ` +
        `${formatRate(r.ticketsPerSec)} | ${formatRatio(r.ratio)} | ${perCall(j?.syncsPerCall, 3)} | ${perCall(j?.writesPerCall, 3)} | ${perCall(j?.bytesPerCall, 0)} | ${r.errors} |`,
    )
  }
  return lines.join('\n')
}

/** results/queue.md, rendered from queue.json. */
export function queueMarkdown(results: QueueResults): string {
  const o = results.options
  return [
    '# The durable broker next to the broker in memory',
    '',
    'Generated by `node dist/benchmarks/run.js queue` from queue.json; do not edit by hand.',
    '',
    `Machine: ${describeMachine(results.machine)}`,
    '',
    `A zrpc Broker in the bench process on 127.0.0.1, ${o.workers} echo worker processes (\`connectBroker\` concurrency ${o.concurrency}), ` +
      `one RpcClient. Each phase on a fresh broker; a durable one in a fresh directory under the OS temp directory, removed after. ` +
      'Sync modes of the journal: `always` fdatasyncs each group commit before the calls in it are queued, `batch` at most every 10 ms, ' +
      '`none` leaves the bytes in the OS cache. Ratios: against the in-memory row of the same kind and window, this run.',
    '',
    '## Unary calls',
    '',
    `${PAYLOAD} B echo calls, closed loop, ${o.warmupMs} ms warm-up + ${o.measureMs} ms measured per phase, calls failing after ${o.callTimeoutMs} ms. ` +
      '`Echo.echo` is not idempotent, so a durable broker records each call when it accepts it and again as sent before a worker gets it; ' +
      'the idempotent row calls the same echo marked `idempotent: true`, recorded once. Journal figures over every call of the phase ' +
      '(warm-up included): fsyncs and writes (one per group commit) and bytes appended per call; the delete of a delivered answer comes ' +
      '5 s later and mostly falls outside the phase.',
    '',
    unaryTable(results.rows),
    '',
    '## Deferred calls',
    '',
    `\`client.queue(Echo).echo\`: ${o.tickets} submits of ${PAYLOAD} B kept at ${o.ticketWindow} in flight, then every ticket collected ` +
      `(waitMs ${COLLECT_WAIT_MS / 1000} s) at the same window, after an unmeasured round of a fifth as many. tickets/s = tickets ÷ ` +
      '(submit time + collect time); the submit latency is until the ticket is back (on disk, for a durable broker). Journal figures over the ' +
      'measured tickets, the delete of each collected ticket included.',
    '',
    deferredTable(results.rows),
    '',
  ].join('\n')
}

/** Runs every phase, printing a line each, then the tables; with --write (not --quick), writes queue.json and queue.md. */
export async function main(argv: readonly string[] = [], print?: (line: string) => void, machine: MachineInfo = machineInfo()): Promise<QueueRow[]> {
  const o = parseOptions(argv)
  const progress = new Progress(process.stdout, verboseFlag(argv))
  const out = print ?? ((line: string) => progress.result(line))
  const phases = o.windows.length * o.stores.length + o.deferredStores.length
  let rows: QueueRow[] = []
  const started = Date.now()
  const onRow = (row: QueueRow): void => {
    rows.push(row)
    out(formatRow(row))
    if (print === undefined) {
      const left = ((Date.now() - started) / rows.length) * (phases - rows.length)
      progress.update(`queue ${rows.length}/${phases} phases, ~${Math.ceil(left / 1000)} s left`)
    }
  }
  out(
    `I: queue: ${o.windows.length * o.stores.length} unary phases of ${o.warmupMs} + ${o.measureMs} ms (stores ${o.stores.join(', ')}; in flight ${o.windows.join(', ')}), ` +
      `${o.deferredStores.length} deferred phases of ${o.tickets} tickets at ${o.ticketWindow} in flight; ${o.workers} workers x concurrency ${o.concurrency}`,
  )
  const failed = (err: unknown): { errors: number; firstError: string } => ({ errors: 1, firstError: err instanceof Error ? `${err.name}: ${err.message}` : String(err) })
  try {
    for (const window of o.windows) {
      for (const store of o.stores) {
        // A phase that fails as a whole (it did not drain, a worker did not start) is a row of its own; the run goes on.
        onRow(await unaryPhase(store, window, o).catch((err: unknown): UnaryRow => ({ kind: 'unary', store, window, payload: PAYLOAD, callsPerSec: 0, p50Us: Number.NaN, p99Us: Number.NaN, ...failed(err) })))
      }
    }
    for (const store of o.deferredStores) {
      onRow(
        await deferredPhase(store, o).catch(
          (err: unknown): DeferredRow => ({ kind: 'deferred', store, tickets: o.tickets, window: o.ticketWindow, submitPerSec: 0, collectPerSec: 0, ticketsPerSec: 0, submitP50Us: Number.NaN, submitP99Us: Number.NaN, ...failed(err) }),
        ),
      )
    }
  } finally {
    progress.done()
  }
  rows = withRatios(rows)
  out(`\n${unaryTable(rows)}\n\n${deferredTable(rows)}\n`)
  if (o.write) {
    mkdirSync(RESULTS, { recursive: true })
    const json = new URL('queue.json', RESULTS)
    const results: QueueResults = { machine, argv, options: o, rows }
    writeFileSync(json, `${JSON.stringify(results, null, 2)}\n`)
    out(`I: wrote ${fileURLToPath(json)}`)
    // Rendered from the file just written, so queue.md shows exactly what queue.json holds.
    const markdown = new URL('queue.md', RESULTS)
    writeFileSync(markdown, queueMarkdown(JSON.parse(readFileSync(json, 'utf8')) as QueueResults))
    out(`I: wrote ${fileURLToPath(markdown)}`)
  }
  const errors = rows.reduce((n, r) => n + r.errors, 0)
  if (errors > 0) console.error(`W: ${errors} calls or tickets failed; see the errors column`)
  return rows
}
