// Keeps the bench code from rotting: runs rpc.bench's core loop for a fraction of a second against
// real servers and checks that calls complete without errors. It never asserts a speed.
import { fileURLToPath } from 'node:url'
import { expect } from 'chai'
import { measureSystem, parseOptions, summarize, type MeasurePlan, type PhaseRecord } from '../../benchmarks/rpc.bench.js'
import { nearestRank } from '../../benchmarks/harness/load.js'
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

  it('summarizes the runs with each row as a ratio to raw and to the ceiling, and an aim for zrpc', () => {
    const systems = ['raw', 'raw-coalesced', 'zrpc', 'moleculer'] as const
    const rows = summarize(records, { systems, modes: ['sequential', 'window16'], payloads: [64] })
    expect(rows.map((r) => `${r.system} ${r.mode}`)).to.deep.equal(['sequential', 'window16'].flatMap((mode) => systems.map((s) => `${s} ${mode}`)))
    for (const row of rows) {
      if (row.system === 'raw') expect(row.callsRatioToRaw).to.equal(undefined)
      else expect(row.callsRatioToRaw).to.be.a('number').and.greaterThan(0)
      if (row.system === 'raw-coalesced') expect(row.callsRatioToCeiling).to.equal(undefined)
      else expect(row.callsRatioToCeiling).to.be.a('number').and.greaterThan(0)
      if (row.system === 'zrpc') expect(row.aim).to.be.oneOf(['met', 'missed'])
      else expect(row.aim).to.equal(undefined)
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
