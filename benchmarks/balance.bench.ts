/**
 * Question: with one client connected straight to several servers, one of them slow, what does each
 * balancer give in throughput and tail latency, and how much of the load lands on the slow server?
 *
 * Four echo server processes (benchmarks/broker/worker-main.js in `direct` mode, bound to 127.0.0.1):
 * three answer at once, one waits `--slow-ms` (default 5 ms) per call, as a server with a slow disk
 * or a long GC would. One RpcClient in this process with all four endpoints, 64 B echo calls kept at
 * `--windows` in flight (default 64 and 256); for each balancer (round-robin, least-outstanding,
 * power-of-two) in turn, within one run: calls/s, p50, p99, and the slow server's share of the calls.
 *
 *   node dist/benchmarks/run.js balance [--quick] [--slow-ms=5] [--windows=64,256] [--measure-ms=1500] [--write]
 *
 * A full run (the runner passes --write) writes benchmarks/results/balance.md; --quick writes nothing.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { RpcClient, type BalancerName } from '../lib/index.js'
import { Echo } from './broker/echo.js'
import { forkServer, type ForkedServer } from './harness/child.js'
import { formatLatency, formatRate } from './harness/format.js'
import { runPhase } from './harness/load.js'
import { describeMachine, machineInfo } from './harness/machine.js'

const WORKER = new URL('./broker/worker-main.js', import.meta.url)
const RESULTS = new URL('../../benchmarks/results/', import.meta.url)
const POLICIES: readonly BalancerName[] = ['round-robin', 'least-outstanding', 'power-of-two']
const PAYLOAD = 'x'.repeat(64)

export interface BalanceRow {
  readonly balancer: BalancerName
  readonly window: number
  readonly callsPerSec: number
  readonly p50Us: number
  readonly p99Us: number
  /** Share of the phase's calls that the slow server got (0..1). */
  readonly slowShare: number
  readonly errors: number
}

const flag = (argv: readonly string[], name: string): string | undefined => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)

/** Runs every policy at every window against the same four servers; prints a line per phase. */
export async function main(argv: readonly string[] = [], print: (line: string) => void = (l) => console.log(l)): Promise<BalanceRow[]> {
  const quick = argv.includes('--quick')
  const slowMs = Number(flag(argv, 'slow-ms') ?? 5)
  const windows = (flag(argv, 'windows') ?? '64,256').split(',').map(Number)
  const measureMs = Number(flag(argv, 'measure-ms') ?? (quick ? 300 : 1500))
  const warmupMs = quick ? 100 : 500
  const servers: ForkedServer[] = []
  const rows: BalanceRow[] = []
  try {
    // worker-main argv: <mode> <endpoint> [heartbeatMs] [concurrency] [delayMs]
    for (const delay of [0, 0, 0, slowMs]) servers.push(await forkServer(WORKER.pathname, ['direct', 'tcp://127.0.0.1:*', '1000', '1', String(delay)]))
    const endpoints = servers.map((s) => s.endpoint)
    const slow = endpoints[3]!
    for (const window of windows) {
      for (const balancer of POLICIES) {
        const client = new RpcClient({ connect: endpoints, balancer, timeoutMs: 30_000 })
        try {
          const echo = client.service(Echo)
          const call = async (): Promise<void> => {
            const data = await echo.echo({ data: PAYLOAD })
            if (data.length !== PAYLOAD.length) throw new Error(`reply of ${data.length} bytes, sent ${PAYLOAD.length}`)
          }
          const callsBefore = client.stats.map((c) => c.calls)
          const result = await runPhase(call, { window, warmupMs, measureMs })
          const calls = client.stats.map((c, i) => c.calls - (callsBefore[i] ?? 0))
          const total = calls.reduce((a, b) => a + b, 0)
          const slowCalls = calls[endpoints.indexOf(slow)] ?? 0
          const row: BalanceRow = { balancer, window, callsPerSec: result.callsPerSec, p50Us: result.p50Us, p99Us: result.p99Us, slowShare: total > 0 ? slowCalls / total : 0, errors: result.errors }
          rows.push(row)
          print(
            `${balancer.padEnd(17)} window=${String(window).padEnd(3)} ${formatRate(row.callsPerSec).padStart(6)} calls/s  p50 ${formatLatency(row.p50Us).padStart(7)}  p99 ${formatLatency(row.p99Us).padStart(7)}  slow server's share ${(100 * row.slowShare).toFixed(1)} %${row.errors > 0 ? `  ERRORS ${row.errors}` : ''}`,
          )
        } finally {
          await client.close()
        }
      }
    }
  } finally {
    await Promise.all(servers.map((s) => s.stop()))
  }
  if (argv.includes('--write') && !quick) {
    mkdirSync(RESULTS, { recursive: true })
    const file = new URL('balance.md', RESULTS)
    writeFileSync(file, balanceMarkdown(rows, slowMs))
    print(`I: wrote ${file.pathname}`)
  }
  return rows
}

/** results/balance.md: the machine, the method and one table, ratios to round-robin in the same run. */
export function balanceMarkdown(rows: readonly BalanceRow[], slowMs: number): string {
  const base = (w: number): BalanceRow | undefined => rows.find((r) => r.window === w && r.balancer === 'round-robin')
  const lines = [
    '# Balancing over several servers',
    '',
    'Generated by `node dist/benchmarks/run.js balance`; do not edit by hand.',
    '',
    `Machine: ${describeMachine(machineInfo())}`,
    '',
    `One RpcClient connected straight to 4 echo server processes on 127.0.0.1, one of them waiting ${slowMs} ms per call; 64 B calls, closed loop. Each balancer in turn, in one run.`,
    '',
    '| balancer | in flight | calls/s | p50 | p99 | calls/s vs round-robin | p99 vs round-robin | slow server\'s share |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for (const r of rows) {
    const rr = base(r.window)
    const ratio = (a: number, b: number | undefined): string => (b === undefined || b === 0 || r.balancer === 'round-robin' ? '' : `${(a / b).toFixed(2)}x`)
    lines.push(`| ${r.balancer} | ${r.window} | ${formatRate(r.callsPerSec)} | ${formatLatency(r.p50Us)} | ${formatLatency(r.p99Us)} | ${ratio(r.callsPerSec, rr?.callsPerSec)} | ${ratio(r.p99Us, rr?.p99Us)} | ${(100 * r.slowShare).toFixed(1)} % |`)
  }
  return `${lines.join('\n')}\n`
}
