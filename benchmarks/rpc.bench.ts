/**
 * Question: what does zrpc cost over raw zeromq.js, and what does coalescing buy, for an echo RPC?
 *
 * Systems: raw zeromq.js, raw zeromq.js coalesced per turn (the ceiling), zrpc with coalescing off,
 * zrpc with coalescing on (the default), gRPC, Moleculer 0.14 over TCP (see rpc/systems.ts). The
 * server runs in a forked child process, the client here; both on 127.0.0.1. The table gives each
 * system's calls/s as a ratio to raw and, when raw-coalesced ran, to that ceiling, and marks the
 * aims of issue 8 (AIMS below) pass or miss on the zrpc rows.
 * Load: closed loop with W callers (sequential W=1, window16, window256), payloads 64 B and 4 KiB
 * (see harness/load.ts). Each system gets a window-16 warm-up first, then every phase its own warm-up.
 * All servers run at once and the systems take turns within each phase (order rotated per run), so
 * a row and its raw baseline are measured seconds apart. With --runs=N every figure is the median of
 * N runs; ratios are taken within each run, then the median.
 *
 *   node dist/benchmarks/run.js rpc [--quick] [--only=zrpc,raw] [--runs=3] [--measure-ms=1700]
 *     [--warmup-ms=300] [--initial-warmup-ms=1500] [--payloads=64,4096] [--modes=sequential,window16,window256]
 *     [--write | --no-write] [--report-only] [--verbose]
 * Every flag may also come from the environment as BENCH_<FLAG> (BENCH_ONLY=zrpc, BENCH_QUICK=1, ...).
 * In a terminal a status line shows progress and each phase logs an `I: run` line; in a pipe only the
 * final table, the aims and the paths written appear, unless --verbose.
 * A full run writes benchmarks/results/rpc.json, then renders rpc.md, rpc-window256.svg and
 * benchmarks/RESULTS.md from it (harness/rpc-report.ts); --quick writes nothing unless --write is
 * given; --report-only re-renders them from the stored rpc.json.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { forkServer, type ForkedServer } from './harness/child.js'
import { runPhase, type PhaseResult } from './harness/load.js'
import { describeMachine, machineInfo, type MachineInfo } from './harness/machine.js'
import { formatBytes, formatLatency, formatRate, median } from './harness/format.js'
import { Progress, verboseFlag } from './harness/progress.js'
import { OTHER_RESULTS, aimsTable, markdownTable, resultsMarkdown, rpcMarkdown, window256Chart } from './harness/rpc-report.js'
import { SYSTEMS, SYSTEM_LABELS, connectClient, type EchoClient, type SystemId } from './rpc/systems.js'

export const MODES = { sequential: 1, window16: 16, window256: 256 } as const
export type Mode = keyof typeof MODES

export interface RpcBenchOptions {
  readonly systems: readonly SystemId[]
  readonly modes: readonly Mode[]
  readonly payloads: readonly number[]
  readonly runs: number
  readonly initialWarmupMs: number
  readonly warmupMs: number
  readonly measureMs: number
  readonly write: boolean
  readonly quick: boolean
}

/**
 * One aim of issue 8 for one row: this system's calls/s (or p50) as a ratio to a baseline system's,
 * taken within each run (same phase, seconds apart), then the median over runs.
 */
export interface Aim {
  readonly system: SystemId
  readonly mode: Mode
  /** The payload the aim is for; undefined: every payload measured. */
  readonly payload?: number
  readonly base: SystemId
  readonly measure: 'calls/s' | 'p50'
  /** 'least': ratio >= target (throughput); 'most': ratio <= target (latency). */
  readonly at: 'least' | 'most'
  readonly target: number
}

/**
 * The aims of issue 8 for zrpc direct (the default, coalescing on). The earlier ones (pipelined
 * >= 0.7x raw, sequential p50 <= 1.3x raw) are dropped: the first is implied by >= 5x raw and the
 * second is the looser form of the 1.15x below.
 */
export const AIMS: readonly Aim[] = [
  { system: 'zrpc', mode: 'window256', payload: 64, base: 'raw', measure: 'calls/s', at: 'least', target: 5 },
  { system: 'zrpc', mode: 'window256', payload: 64, base: 'raw-coalesced', measure: 'calls/s', at: 'least', target: 0.5 },
  { system: 'zrpc', mode: 'window256', payload: 64, base: 'moleculer', measure: 'calls/s', at: 'least', target: 4 },
  { system: 'zrpc', mode: 'sequential', base: 'raw', measure: 'p50', at: 'most', target: 1.15 },
  { system: 'zrpc', mode: 'window256', payload: 4096, base: 'raw', measure: 'calls/s', at: 'least', target: 3 },
]

/** How one row did against one aim; `ratio` is undefined when the baseline did not run. */
export interface AimResult {
  readonly aim: Aim
  readonly ratio?: number
  readonly met?: boolean
}

// ---------------------------------------------------------------------------------------------
// options

export function parseOptions(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): RpcBenchOptions {
  const flag = (name: string): string | undefined => {
    const prefix = `--${name}=`
    const found = argv.find((a) => a === `--${name}` || a.startsWith(prefix))
    if (found !== undefined) return found === `--${name}` ? 'true' : found.slice(prefix.length)
    return env[`BENCH_${name.toUpperCase().replace(/-/g, '_')}`]
  }
  const bool = (name: string): boolean | undefined => {
    if (flag(`no-${name}`) !== undefined) return false
    const v = flag(name)
    return v === undefined ? undefined : v !== '0' && v !== 'false'
  }
  const num = (name: string, fallback: number): number => {
    const v = flag(name)
    if (v === undefined) return fallback
    const n = Number(v)
    if (!(Number.isFinite(n) && n >= 0)) throw new Error(`--${name} needs a non-negative number, got ${v}`)
    return n
  }
  const list = (name: string): string[] | undefined => flag(name)?.split(',').map((s) => s.trim()).filter((s) => s !== '')

  const quick = bool('quick') ?? false
  const only = list('only')
  // "zrpc" names both zrpc variants; raw always runs, the ratios need it.
  const systems = only === undefined ? [...SYSTEMS] : SYSTEMS.filter((s) => s === 'raw' || only.some((o) => s === o || s.startsWith(`${o}-`)))
  for (const o of only ?? []) if (!SYSTEMS.some((s) => s === o || s.startsWith(`${o}-`))) throw new Error(`--only: unknown system ${o} (known: ${SYSTEMS.join(', ')})`)
  const modes = (list('modes') ?? Object.keys(MODES)).map((m) => {
    if (!(m in MODES)) throw new Error(`--modes: unknown mode ${m} (known: ${Object.keys(MODES).join(', ')})`)
    return m as Mode
  })
  const payloads = (list('payloads') ?? ['64', '4096']).map(Number)
  if (payloads.some((p) => !(Number.isInteger(p) && p > 0))) throw new Error('--payloads needs positive integers')
  return {
    systems,
    modes,
    payloads,
    runs: Math.max(1, Math.round(num('runs', quick ? 1 : 3))),
    initialWarmupMs: num('initial-warmup-ms', quick ? 200 : 1500),
    warmupMs: num('warmup-ms', quick ? 50 : 300),
    measureMs: Math.max(1, num('measure-ms', quick ? 200 : 1700)),
    write: bool('write') ?? !quick,
    quick,
  }
}

/** Rough wall time of a run, for the hard limit. */
export function estimateMs(o: RpcBenchOptions): number {
  const perSystem = o.initialWarmupMs + o.modes.length * o.payloads.length * (o.warmupMs + o.measureMs) + 1500
  return o.runs * o.systems.length * perSystem
}

// ---------------------------------------------------------------------------------------------
// the core loop

export interface PhaseRecord extends PhaseResult {
  readonly system: SystemId
  readonly mode: Mode
  readonly payload: number
  readonly run: number
}

export interface MeasurePlan {
  readonly modes: readonly Mode[]
  readonly payloads: readonly number[]
  readonly initialWarmupMs: number
  readonly warmupMs: number
  readonly measureMs: number
}

/**
 * Connects one client per system, warms each up, then runs every payload x mode phase with the
 * systems back to back inside each phase, so the systems compared in one row of the table are
 * measured seconds apart, not minutes (the machine is shared and its load drifts). The servers may
 * be in other processes (the bench) or in this one (the smoke test).
 */
export async function measureSystems(
  endpoints: ReadonlyArray<readonly [SystemId, string]>,
  plan: MeasurePlan,
  run = 0,
  onPhase?: (r: PhaseRecord) => void,
): Promise<PhaseRecord[]> {
  const clients: Array<[SystemId, EchoClient]> = []
  const records: PhaseRecord[] = []
  try {
    for (const [system, endpoint] of endpoints) clients.push([system, await connectClient(system, endpoint)])
    for (const [, client] of clients) {
      if (plan.initialWarmupMs > 0) {
        await runPhase(client.caller(plan.payloads[0] ?? 64), { window: 16, warmupMs: plan.initialWarmupMs, measureMs: 1 })
      }
    }
    // Which system stalled is the first thing to know when a phase never ends.
    const phase = (system: SystemId, mode: Mode, payload: number, call: () => Promise<void>): Promise<PhaseResult> =>
      runPhase(call, { window: MODES[mode], warmupMs: plan.warmupMs, measureMs: plan.measureMs }).catch((err: unknown) => {
        const client = clients.find(([id]) => id === system)?.[1]
        const state = client?.describe === undefined ? '' : `; client: ${client.describe()}`
        throw new Error(`${system}, ${mode}, ${formatBytes(payload)}: ${err instanceof Error ? err.message : String(err)}${state}`)
      })
    for (const payload of plan.payloads) {
      const calls = clients.map(([system, client]) => [system, client.caller(payload)] as const)
      for (const mode of plan.modes) {
        for (const [system, call] of calls) {
          const result = await phase(system, mode, payload, call)
          const record: PhaseRecord = { system, mode, payload, run, ...result }
          records.push(record)
          onPhase?.(record)
        }
      }
    }
  } finally {
    await Promise.all(clients.map(([, client]) => client.close()))
  }
  return records
}

/** {@link measureSystems} for one system. */
export function measureSystem(system: SystemId, endpoint: string, plan: MeasurePlan, run = 0, onPhase?: (r: PhaseRecord) => void): Promise<PhaseRecord[]> {
  return measureSystems([[system, endpoint]], plan, run, onPhase)
}

// ---------------------------------------------------------------------------------------------
// summary

export interface Row {
  readonly system: SystemId
  readonly label: string
  readonly mode: Mode
  readonly payload: number
  readonly runs: number
  readonly callsPerSec: number
  readonly callsPerSecMin: number
  readonly callsPerSecMax: number
  readonly p50Us: number
  readonly p99Us: number
  readonly errors: number
  /** Rows other than raw: median over runs of (this calls/s) / (raw calls/s in the same run). */
  readonly callsRatioToRaw?: number
  /** Rows other than raw: median over runs of (this p50) / (raw p50 in the same run). */
  readonly p50RatioToRaw?: number
  /** Rows other than the ceiling, when raw-coalesced ran: median over runs of (this calls/s) / (raw-coalesced calls/s). */
  readonly callsRatioToCeiling?: number
  /** The aims of {@link AIMS} that apply to this row, each met, missed or not measured. */
  readonly aims?: readonly AimResult[]
}

export function summarize(records: readonly PhaseRecord[], o: Pick<RpcBenchOptions, 'systems' | 'modes' | 'payloads'>): Row[] {
  const rows: Row[] = []
  for (const payload of o.payloads) {
    for (const mode of o.modes) {
      for (const system of o.systems) {
        const mine = records.filter((r) => r.system === system && r.mode === mode && r.payload === payload)
        if (mine.length === 0) continue
        const rates = mine.map((r) => r.callsPerSec)
        // Ratios are taken within each run (same run, same phase), then the median over runs.
        const ratioTo = (base: SystemId, pick: (r: PhaseRecord) => number): number | undefined => {
          if (system === base) return undefined
          const within: number[] = []
          for (const r of mine) {
            const b = records.find((x) => x.system === base && x.mode === mode && x.payload === payload && x.run === r.run)
            if (b !== undefined) within.push(pick(r) / pick(b))
          }
          return within.length > 0 ? median(within) : undefined
        }
        const callsRatioToRaw = ratioTo('raw', (r) => r.callsPerSec)
        const p50RatioToRaw = ratioTo('raw', (r) => r.p50Us)
        const callsRatioToCeiling = ratioTo('raw-coalesced', (r) => r.callsPerSec)
        const aims = AIMS.filter((a) => a.system === system && a.mode === mode && (a.payload === undefined || a.payload === payload)).map((aim): AimResult => {
          const ratio = ratioTo(aim.base, (r) => (aim.measure === 'p50' ? r.p50Us : r.callsPerSec))
          if (ratio === undefined || !Number.isFinite(ratio)) return { aim }
          return { aim, ratio, met: aim.at === 'least' ? ratio >= aim.target : ratio <= aim.target }
        })
        const ratios: Pick<Row, 'callsRatioToRaw' | 'p50RatioToRaw' | 'callsRatioToCeiling' | 'aims'> = {
          ...(callsRatioToRaw === undefined ? {} : { callsRatioToRaw }),
          ...(p50RatioToRaw === undefined ? {} : { p50RatioToRaw }),
          ...(callsRatioToCeiling === undefined ? {} : { callsRatioToCeiling }),
          ...(aims.length === 0 ? {} : { aims }),
        }
        rows.push({
          system,
          label: SYSTEM_LABELS[system],
          mode,
          payload,
          runs: mine.length,
          callsPerSec: median(rates),
          callsPerSecMin: Math.min(...rates),
          callsPerSecMax: Math.max(...rates),
          p50Us: median(mine.map((r) => r.p50Us)),
          p99Us: median(mine.map((r) => r.p99Us)),
          errors: mine.reduce((n, r) => n + r.errors, 0),
          ...ratios,
        })
      }
    }
  }
  return rows
}

// ---------------------------------------------------------------------------------------------
// main

const SERVER_MAIN = fileURLToPath(new URL('./rpc/server-main.js', import.meta.url))
const BENCHMARKS = new URL('../../benchmarks/', import.meta.url)
const RESULTS = new URL('results/', BENCHMARKS)

/** What rpc.json holds; the Markdown table and the chart are rendered from it. */
export interface RpcResults {
  readonly machine: MachineInfo
  readonly options: RpcBenchOptions
  readonly argv: readonly string[]
  readonly rows: readonly Row[]
  readonly records: readonly PhaseRecord[]
}

/**
 * Renders rpc.md, rpc-window256.svg and benchmarks/RESULTS.md from rpc.json (also on its own:
 * `run.js rpc --report-only`). The rows are summarized again from the stored records, so a file
 * from an older run gets today's aims; returns the paths written.
 */
export function writeReports(): string[] {
  const results = JSON.parse(readFileSync(new URL('rpc.json', RESULTS), 'utf8')) as RpcResults
  const { machine, options: o } = results
  const rows = summarize(results.records, o)
  const written: string[] = []
  const write = (url: URL, text: string): void => {
    writeFileSync(url, text)
    written.push(fileURLToPath(url))
  }
  write(new URL('rpc.md', RESULTS), rpcMarkdown(results, rows))
  const charted = o.modes.includes('window256')
  if (charted) write(new URL('rpc-window256.svg', RESULTS), window256Chart(rows, machine, o.systems, o.payloads))
  const present = new Set(OTHER_RESULTS.map(([file]) => file).filter((file) => existsSync(new URL(file, BENCHMARKS))))
  write(new URL('RESULTS.md', BENCHMARKS), resultsMarkdown(results, rows, charted, present))
  return written
}

export async function main(argv: readonly string[], machine: MachineInfo = machineInfo()): Promise<Row[]> {
  const progress = new Progress(process.stdout, verboseFlag(argv))
  if (argv.includes('--report-only')) {
    for (const path of writeReports()) progress.result(`I: wrote ${path}`)
    return []
  }
  const o = parseOptions(argv)
  const limitMs = estimateMs(o) * 2 + 60_000
  const hardLimit = setTimeout(() => {
    progress.done()
    console.error(`E: rpc bench exceeded its hard limit of ${Math.round(limitMs / 1000)} s`)
    process.exit(4)
  }, limitMs)
  hardLimit.unref()
  progress.log(
    `I: rpc: systems ${o.systems.join(', ')}; modes ${o.modes.join(', ')}; payloads ${o.payloads.join(', ')} B; ` +
      `${o.runs} run(s); warm-up ${o.initialWarmupMs} ms, then per phase ${o.warmupMs} + ${o.measureMs} ms; about ${Math.round(estimateMs(o) / 1000)} s`,
  )

  const records: PhaseRecord[] = []
  const phases = o.runs * o.systems.length * o.modes.length * o.payloads.length
  const started = Date.now()
  const status = (next: string): void => {
    const done = records.length
    const left = done === 0 ? estimateMs(o) : ((Date.now() - started) / done) * (phases - done)
    progress.update(`rpc ${done}/${phases} phases, ~${Math.ceil(left / 1000)} s left: ${next}`)
  }
  try {
    for (let run = 0; run < o.runs; run++) {
      // Rotate the order each run, so no system always goes first after a warm-up.
      const order = o.systems.map((_, i) => o.systems[(i + run) % o.systems.length]!)
      const servers = new Map<SystemId, ForkedServer>()
      try {
        status(`run ${run + 1}/${o.runs}, starting servers and warming up`)
        for (const system of order) servers.set(system, await forkServer(SERVER_MAIN, [`--system=${system}`, `--limit-ms=${limitMs}`]))
        const endpoints = order.map((system) => [system, servers.get(system)!.endpoint] as const)
        await measureSystems(endpoints, o, run, (r) => {
          records.push(r)
          const errors = r.errors > 0 ? `  ERRORS ${r.errors} (${r.firstError ?? ''})` : ''
          progress.log(
            `I: run ${run + 1} ${formatBytes(r.payload).padStart(6)} ${r.mode.padEnd(10)} ${r.system.padEnd(15)} ` +
              `${formatRate(r.callsPerSec).padStart(6)} calls/s  p50 ${formatLatency(r.p50Us).padStart(9)}  p99 ${formatLatency(r.p99Us).padStart(9)}${errors}`,
          )
          status(`run ${run + 1}/${o.runs}, last ${formatBytes(r.payload)} ${r.mode} ${r.system} ${formatRate(r.callsPerSec)} calls/s`)
        })
      } finally {
        await Promise.all([...servers.values()].map((server) => server.stop()))
      }
    }
  } finally {
    clearTimeout(hardLimit)
    progress.done()
  }

  const rows = summarize(records, o)
  progress.result(`\nMachine: ${describeMachine(machine)}\n\n${markdownTable(rows)}\n\n${aimsTable(rows)}\n`)
  if (o.write) {
    mkdirSync(RESULTS, { recursive: true })
    const results: RpcResults = { machine, options: o, argv, rows, records }
    writeFileSync(new URL('rpc.json', RESULTS), JSON.stringify(results, null, 2) + '\n')
    progress.result(`I: wrote ${fileURLToPath(new URL('rpc.json', RESULTS))}`)
    for (const path of writeReports()) progress.result(`I: wrote ${path}`)
  }
  const errors = rows.reduce((n, r) => n + r.errors, 0)
  if (errors > 0) console.error(`W: ${errors} calls failed; see the errors column`)
  return rows
}
