/**
 * The reports of broker.bench, rendered from its JSON and nothing else: the table (console and
 * broker.md), the aim lines and the zrpc-broker-io lines. Pure functions: the caller writes the files.
 */
import { formatBytes, formatLatency, formatMicros, formatRate, formatRatio } from './format.js'
import { describeMachine } from './machine.js'
import type { BrokerBenchRow, BrokerResults } from '../broker.bench.js'

/** One of issue 8's broker aims, judged from the rows of one run. */
export interface BrokerAim {
  name: string
  /** zrpc-broker calls/s over the baseline's, or undefined when the run did not measure both. */
  ratio: number | undefined
  target: number
  met: boolean
  /** Where the aim is stated: workers, calls in flight and payload bytes of the zrpc-broker row. */
  workers: number
  window: number
  payload: number
}

/** The workers, window and payload the broker aim is stated for. */
const AIM_WORKERS = 2
const AIM_WINDOW = 256
const AIM_PAYLOAD = 64

/**
 * Issue 8's broker aim: zrpc-broker with 2 worker processes at 256 in flight, 64 B calls, at least 5x
 * raw-credit (2 workers, same window and payload) and at least 0.4x zrpc-direct (same window and
 * payload), both from the same run.
 */
export function brokerAims(rows: readonly BrokerBenchRow[]): BrokerAim[] {
  const find = (system: BrokerBenchRow['system'], workers: number): BrokerBenchRow | undefined =>
    rows.find((r) => r.system === system && r.window === AIM_WINDOW && r.payload === AIM_PAYLOAD && (system === 'zrpc-direct' || r.workers === workers))
  const typed = find('zrpc-broker', AIM_WORKERS)
  const judge = (name: string, baseline: BrokerBenchRow | undefined, target: number): BrokerAim => {
    const ratio = typed && baseline && baseline.callsPerSecond > 0 ? typed.callsPerSecond / baseline.callsPerSecond : undefined
    return { name, ratio, target, met: ratio !== undefined && ratio >= target, workers: AIM_WORKERS, window: AIM_WINDOW, payload: AIM_PAYLOAD }
  }
  return [judge('zrpc-broker/raw-credit', find('raw-credit', AIM_WORKERS), 5), judge('zrpc-broker/zrpc-direct', find('zrpc-direct', 1), 0.4)]
}

/** The order of systems within one (payload, workers, window) group of the table: baselines first. */
const TABLE_ORDER: ReadonlyArray<BrokerBenchRow['system']> = ['zrpc-direct', 'lbbroker', 'raw-credit', 'zrpc-broker']

/** This row's calls/s over its baseline's (same workers too when `sameWorkers`), or undefined. */
function ratioTo(rows: readonly BrokerBenchRow[], row: BrokerBenchRow, base: BrokerBenchRow['system'], sameWorkers: boolean): number | undefined {
  if (row.system === base) return undefined
  const b = rows.find((r) => r.system === base && r.window === row.window && r.payload === row.payload && (!sameWorkers || r.workers === row.workers))
  return b !== undefined && b.callsPerSecond > 0 ? row.callsPerSecond / b.callsPerSecond : undefined
}

/** One table of every system but zrpc-broker-io, grouped by payload, workers and in flight. */
export function brokerTable(rows: readonly BrokerBenchRow[]): string {
  const shown = rows
    .filter((r) => r.system !== 'zrpc-broker-io')
    .sort((a, b) => a.payload - b.payload || a.workers - b.workers || a.window - b.window || TABLE_ORDER.indexOf(a.system) - TABLE_ORDER.indexOf(b.system))
  const lines = [
    '| system | workers | in flight | payload | calls/s | p50 µs | p99 µs | vs raw-credit (same workers, window, payload) | vs zrpc-direct (same window, payload) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for (const r of shown) {
    lines.push(
      `| ${r.system} | ${r.workers} | ${r.window} | ${formatBytes(r.payload)} | ${formatRate(r.callsPerSecond)} | ${formatMicros(r.p50Us)} | ${formatMicros(r.p99Us)} | ` +
        `${formatRatio(ratioTo(rows, r, 'raw-credit', true))} | ${formatRatio(ratioTo(rows, r, 'zrpc-direct', false))} |`,
    )
  }
  return lines.join('\n')
}

/** "aim zrpc-broker/raw-credit workers=2 window=256 payload=64 B >= 5x: 0.25x miss". */
export function formatAim(aim: BrokerAim): string {
  const where = `workers=${aim.workers} window=${aim.window} payload=${formatBytes(aim.payload)}`
  if (aim.ratio === undefined) {
    return `aim ${aim.name} ${where} >= ${aim.target}x: not measured (needs --workers with ${aim.workers}, --windows with ${aim.window} and --payloads with ${aim.payload})`
  }
  return `aim ${aim.name} ${where} >= ${aim.target}x: ${aim.ratio.toFixed(2)}x ${aim.met ? 'pass' : 'miss'}`
}

/** One line for a zrpc-broker-io row (one server process, `concurrency` requests at once, a handler that waits). */
export function formatIoRow(r: BrokerBenchRow, ioDelayMs: number): string {
  return (
    `zrpc-broker-io workers=1 concurrency=${r.concurrency ?? 1} window=${r.window} payload=${formatBytes(r.payload)} handler waits ${ioDelayMs} ms: ` +
    `${formatRate(r.callsPerSecond)} calls/s, p50 ${formatLatency(r.p50Us)}, p99 ${formatLatency(r.p99Us)}`
  )
}

/** benchmarks/results/broker.md. */
export function brokerMarkdown(results: BrokerResults): string {
  const o = results.options
  // The runner adds --write itself on a full run: the command to repeat is without it.
  const flags = results.argv.filter((a) => a !== '--write')
  const command = `node dist/benchmarks/run.js broker${flags.length > 0 ? ' ' + flags.join(' ') : ''}`
  const io = results.rows.filter((r) => r.system === 'zrpc-broker-io')
  const errors = results.rows.filter((r) => r.errors > 0)
  return [
    '# broker.bench results',
    '',
    `Generated by \`${command}\` from broker.json; do not edit by hand.`,
    '',
    `Machine: ${describeMachine(results.machine)}`,
    '',
    `Method: closed loop, echo calls; per phase ${o.warmupMs} ms warm-up + ${o.measureMs} ms measured; one run. ` +
      `Workers are separate processes (${o.credits} requests at once each for raw-credit and zrpc-broker); brokers and callers run in one process. ` +
      'Ratios are calls/s over the baseline\'s in the same run. Latencies in µs, from 10 ms on in ms.',
    '',
    brokerTable(results.rows),
    '',
    ...(errors.length === 0 ? [] : [...errors.map((r) => `- errors: ${r.system} workers=${r.workers} window=${r.window} payload=${formatBytes(r.payload)}: ${r.errors} (${r.firstError ?? ''})`), '']),
    '## Aims of issue 8 (through the broker)',
    '',
    ...brokerAims(results.rows).map((a) => `- ${formatAim(a)}`),
    '',
    `## An I/O-bound handler (${o.ioDelayMs} ms wait) through the broker, one server process`,
    '',
    ...(io.length === 0 ? ['Not measured.'] : io.map((r) => `- ${formatIoRow(r, o.ioDelayMs)}`)),
    '',
  ].join('\n')
}
