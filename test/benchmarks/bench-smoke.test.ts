// Keeps the bench code from rotting: runs rpc.bench's core loop for a fraction of a second against
// real servers and checks that calls complete without errors. It never asserts a speed.
import { fileURLToPath } from 'node:url'
import { expect } from 'chai'
import { measureSystem, parseOptions, summarize, type AimResult, type MeasurePlan, type PhaseRecord } from '../../benchmarks/rpc.bench.js'
import { nearestRank } from '../../benchmarks/harness/load.js'
import { describeMachine, machineInfo } from '../../benchmarks/harness/machine.js'
import { Progress } from '../../benchmarks/harness/progress.js'
import { aimVerdict, describeAim, resultsMarkdown } from '../../benchmarks/harness/rpc-report.js'
import { forkServer } from '../../benchmarks/harness/child.js'
import { startServer, type SystemId } from '../../benchmarks/rpc/systems.js'
import { benchRunnerPath, runBench } from '../../lib/cli/bench.js'

const TINY: MeasurePlan = { modes: ['sequential', 'window16'], payloads: [64], initialWarmupMs: 0, warmupMs: 20, measureMs: 150 }

describe('rpc bench smoke run (tiny durations, no speed asserted)', function () {
  this.timeout(10_000)
  const records: PhaseRecord[] = []

  // Every server is bound to 127.0.0.1 and nothing else (Moleculer's endpoint is its static URL).
  const LOOPBACK: Record<string, RegExp> = { moleculer: /^127\.0\.0\.1:\d+\/[\w-]+$/ }

  for (const system of ['raw', 'raw-coalesced', 'zrpc', 'moleculer'] as const satisfies readonly SystemId[]) {
    it(`completes calls without errors on ${system} with an in-process server`, async () => {
      const server = await startServer(system)
      try {
        expect(server.endpoint).to.match(LOOPBACK[system] ?? /^tcp:\/\/127\.0\.0\.1:\d+$/)
        const mine = await measureSystem(system, server.endpoint, TINY)
        records.push(...mine)
        expect(mine).to.have.length(2)
        for (const r of mine) {
          expect(r.errors, r.firstError).to.equal(0)
          expect(r.completed).to.be.greaterThan(0)
          expect(r.p50Us).to.be.greaterThan(0)
        }
      } finally {
        await server.close()
      }
    })
  }

  it('summarizes the runs with each row as a ratio to raw and to the ceiling, and the p50 aim for zrpc one call at a time', () => {
    const systems = ['raw', 'raw-coalesced', 'zrpc', 'moleculer'] as const
    const rows = summarize(records, { systems, modes: ['sequential', 'window16'], payloads: [64] })
    expect(rows.map((r) => `${r.system} ${r.mode}`)).to.deep.equal(['sequential', 'window16'].flatMap((mode) => systems.map((s) => `${s} ${mode}`)))
    for (const row of rows) {
      if (row.system === 'raw') expect(row.callsRatioToRaw).to.equal(undefined)
      else expect(row.callsRatioToRaw).to.be.a('number').and.greaterThan(0)
      if (row.system === 'raw-coalesced') expect(row.callsRatioToCeiling).to.equal(undefined)
      else expect(row.callsRatioToCeiling).to.be.a('number').and.greaterThan(0)
      if (row.system === 'zrpc' && row.mode === 'sequential') {
        expect(row.aims?.map((a) => [a.aim.base, a.aim.measure, typeof a.met])).to.deep.equal([['raw', 'p50', 'boolean']])
      } else expect(row.aims).to.equal(undefined)
    }
  })

  it('serves from a forked child process that exits when told to stop', async () => {
    const serverMain = fileURLToPath(new URL('../../benchmarks/rpc/server-main.js', import.meta.url))
    const server = await forkServer(serverMain, ['--system=raw', '--limit-ms=10000'])
    try {
      const [record] = await measureSystem('raw', server.endpoint, { ...TINY, modes: ['window16'], measureMs: 100 })
      expect(record?.errors).to.equal(0)
      expect(record?.completed).to.be.greaterThan(0)
    } finally {
      await server.stop()
    }
    expect(server.child.exitCode).to.equal(0)
  })

  it('takes percentiles by exact nearest rank', () => {
    const sorted = Float64Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    expect(nearestRank(sorted, 50)).to.equal(5)
    expect(nearestRank(sorted, 99)).to.equal(10)
    expect(nearestRank(Float64Array.from([7]), 99)).to.equal(7)
    expect(Number.isNaN(nearestRank(new Float64Array(0), 50))).to.equal(true)
  })
})

describe('rpc bench aims and reports', () => {
  const record = (system: SystemId, mode: 'sequential' | 'window256', payload: number, run: number, callsPerSec: number, p50Us: number): PhaseRecord => ({
    system, mode, payload, run, callsPerSec, p50Us, p99Us: p50Us * 2, window: mode === 'sequential' ? 1 : 256, completed: 1, samples: 1, errors: 0,
  })
  // Run 0: zrpc 6x raw, 0.6x the ceiling, 4.5x Moleculer; run 1: 4x raw. The median of the per-run ratios decides.
  const records = [
    record('raw', 'window256', 64, 0, 10, 1), record('raw-coalesced', 'window256', 64, 0, 100, 1), record('moleculer', 'window256', 64, 0, 60 / 4.5, 1), record('zrpc', 'window256', 64, 0, 60, 1),
    record('raw', 'window256', 64, 1, 20, 1), record('raw-coalesced', 'window256', 64, 1, 100, 1), record('moleculer', 'window256', 64, 1, 10, 1), record('zrpc', 'window256', 64, 1, 80, 1),
    record('raw', 'window256', 64, 2, 10, 1), record('raw-coalesced', 'window256', 64, 2, 100, 1), record('moleculer', 'window256', 64, 2, 10, 1), record('zrpc', 'window256', 64, 2, 55, 1),
    record('raw', 'sequential', 64, 0, 1, 100), record('zrpc', 'sequential', 64, 0, 1, 120),
  ]
  const rows = summarize(records, { systems: ['raw', 'raw-coalesced', 'zrpc', 'moleculer'], modes: ['sequential', 'window256'], payloads: [64] })
  const zrpc = (mode: string): readonly AimResult[] | undefined => rows.find((r) => r.system === 'zrpc' && r.mode === mode)?.aims

  it('marks each of issue 8\'s aims pass or miss from the median of the ratios within each run', () => {
    expect(zrpc('window256')?.map((a) => [describeAim(a.aim), Number(a.ratio?.toFixed(2)), aimVerdict(a)])).to.deep.equal([
      ['calls/s ≥ 5x raw', 5.5, 'pass'],
      ['calls/s ≥ 0.5x raw-coalesced', 0.6, 'pass'],
      ['calls/s ≥ 4x moleculer', 5.5, 'pass'],
    ])
    expect(zrpc('sequential')?.map((a) => [describeAim(a.aim), aimVerdict(a)])).to.deep.equal([['p50 ≤ 1.15x raw', 'miss']])
  })

  it('says "not measured" when an aim\'s baseline did not run', () => {
    const alone = summarize(records.filter((r) => r.system === 'raw' || r.system === 'zrpc'), { systems: ['raw', 'zrpc'], modes: ['window256'], payloads: [64] })
    expect(alone.find((r) => r.system === 'zrpc')?.aims?.map(aimVerdict)).to.deep.equal(['pass', 'not measured', 'not measured'])
  })

  it('renders RESULTS.md with the machine, the aims, the chart link, the table, and links only to result files present', () => {
    const machine = machineInfo()
    const results = { machine, options: parseOptions(['--quick'], {}), argv: [], rows, records }
    const md = resultsMarkdown(results, rows, true, new Set(['results/soak.md']))
    expect(md).to.include(`Machine: ${describeMachine(machine)}`).and.include('3 of 4 aims met.').and.include('](results/rpc-window256.svg)')
    expect(md).to.include('| zrpc, coalesce on (default) | window256 | 64 B |').and.include('](results/soak.md)').and.not.include('broker.md')
  })
})

describe('bench progress', () => {
  const sink = (isTTY: boolean): { out: { isTTY: boolean; write(t: string): boolean }; text: () => string } => {
    let text = ''
    return { out: { isTTY, write: (t: string) => ((text += t), true) }, text: () => text }
  }

  it('in a pipe prints only results, unless verbose', () => {
    for (const verbose of [false, true]) {
      const { out, text } = sink(false)
      const progress = new Progress(out, verbose)
      progress.log('I: run 1')
      progress.update('3/10 phases')
      progress.result('the table')
      progress.done()
      expect(text()).to.equal(verbose ? 'I: run 1\nthe table\n' : 'the table\n')
    }
  })

  it('in a terminal rewrites one status line with \\r and prints log lines above it', () => {
    const { out, text } = sink(true)
    const progress = new Progress({ ...out, columns: 11 })
    progress.update('1/2 phases done')
    progress.log('I: run 1')
    progress.update('2/2')
    progress.done()
    // Cut to the terminal's width less one, so the line never wraps.
    expect(text()).to.equal('\r1/2 phases\r\x1b[KI: run 1\n\r1/2 phases\r\x1b[K\r2/2\r\x1b[K')
  })
})

describe('rpc bench options', () => {
  it('writes results on a full run unless --no-write says not to, and never on --quick unless --write', () => {
    expect(parseOptions([], {}).write).to.equal(true)
    expect(parseOptions(['--no-write'], {}).write).to.equal(false)
    expect(parseOptions(['--quick'], {}).write).to.equal(false)
    expect(parseOptions(['--quick', '--write'], {}).write).to.equal(true)
  })
})

describe('zrpc bench, looking for the runner', () => {
  /** Runs `fn` with stderr captured, so the complaint can be checked and does not reach the test output. */
  async function withStderr(fn: () => Promise<number>): Promise<{ code: number; stderr: string }> {
    const write = process.stderr.write.bind(process.stderr)
    let stderr = ''
    process.stderr.write = ((chunk: string | Uint8Array) => {
      stderr += String(chunk)
      return true
    }) as typeof process.stderr.write
    try {
      return { code: await fn(), stderr }
    } finally {
      process.stderr.write = write
    }
  }

  it('finds dist/benchmarks/run.js in a built checkout', () => {
    expect(benchRunnerPath()).to.be.a('string').and.match(/dist[\\/]benchmarks[\\/]run\.js$/)
  })

  it('in an installed package without benchmarks says on stderr where they are and exits 1', async () => {
    const missing = new URL('../../no-such-dist/', import.meta.url)
    expect(benchRunnerPath(missing)).to.equal(undefined)
    const { code, stderr } = await withStderr(() => runBench(['rpc', '--quick'], missing))
    expect(code).to.equal(1)
    expect(stderr).to.include('ship with the source repository').and.include('npm run bench')
  })
})
