import { readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { expect } from 'chai'
import { main, queueMarkdown, storeSpec, type DeferredRow, type UnaryRow } from '../../benchmarks/queue.bench.js'
import { machineInfo } from '../../benchmarks/harness/machine.js'

const STORES = ['memory', 'always', 'batch', 'none', 'always-idempotent']

describe('the queue bench (smoke)', function () {
  this.timeout(60_000)

  it('measures unary calls through an in-memory and a durable broker, and deferred calls, with forked workers, and writes nothing', async () => {
    const lines: string[] = []
    const tempBefore = readdirSync(tmpdir()).filter((f) => f.startsWith('zrpc-queue-bench-')).length
    // --write is ignored with --quick: a smoke run leaves benchmarks/results alone.
    const rows = await main(['--quick', '--write', '--tickets=300'], (l) => lines.push(l))
    expect(rows.map((r) => (r.kind === 'unary' ? `unary/${r.store}/${r.window}` : `deferred/${r.store}/${r.window}`))).to.deep.equal([
      ...STORES.map((s) => `unary/${s}/16`),
      ...STORES.map((s) => `unary/${s}/256`),
      'deferred/memory/64',
      'deferred/always/64',
    ])
    for (const row of rows.filter((r): r is UnaryRow => r.kind === 'unary')) {
      const phase = `unary ${row.store} at ${row.window}`
      const { sync } = storeSpec(row.store)
      expect(row.errors, `${phase}: ${row.firstError ?? ''}`).to.equal(0)
      expect(row.callsPerSec, phase).to.be.above(0)
      expect(row.p50Us, phase).to.be.above(0)
      expect(row.p99Us, phase).to.be.at.least(row.p50Us)
      if (sync === 'memory') continue
      expect(row.ratio, phase).to.be.a('number').and.above(0)
      expect(row.p99Ratio, phase).to.be.a('number').and.above(0)
      expect(row.journal, phase).to.be.an('object')
      const j = row.journal!
      expect(j.calls, phase).to.be.above(0)
      expect(j.writes, phase).to.be.above(0)
      expect(j.bytesPerCall, phase).to.be.above(64)
      if (sync === 'none') expect(j.syncs, phase).to.equal(0)
      else expect(j.syncs, phase).to.be.above(0)
    }
    for (const row of rows.filter((r): r is DeferredRow => r.kind === 'deferred')) {
      expect(row.errors, `deferred ${row.store}: ${row.firstError ?? ''}`).to.equal(0)
      expect(row.submitPerSec).to.be.above(0)
      expect(row.collectPerSec).to.be.above(0)
      expect(row.ticketsPerSec).to.be.above(0)
      expect(row.submitP50Us).to.be.above(0)
      expect(row.submitP99Us).to.be.at.least(row.submitP50Us)
      if (row.store === 'always') {
        expect(row.ratio).to.be.a('number').and.above(0)
        expect(row.journal?.syncs).to.be.above(0)
        expect(row.journal?.bytesPerCall).to.be.above(64)
      }
    }
    // One line per phase as it is measured, both tables at the end, no file written, no directory left.
    expect(lines.filter((l) => /^(unary|deferred) /.test(l))).to.have.length(rows.length)
    expect(lines.some((l) => l.includes('| broker | in flight | calls/s |'))).to.equal(true)
    expect(lines.some((l) => l.includes('| broker | tickets | in flight |'))).to.equal(true)
    expect(lines.some((l) => l.startsWith('I: wrote'))).to.equal(false)
    expect(readdirSync(tmpdir()).filter((f) => f.startsWith('zrpc-queue-bench-'))).to.have.length(tempBefore)
  })

  it('renders both tables with the ratios to the in-memory broker of the same run', () => {
    const memory: UnaryRow = { kind: 'unary', store: 'memory', window: 256, payload: 64, callsPerSec: 50_000, p50Us: 3000, p99Us: 20_000, errors: 0 }
    const durable: UnaryRow = {
      kind: 'unary', store: 'always', window: 256, payload: 64, callsPerSec: 12_500, p50Us: 12_000, p99Us: 30_000, ratio: 0.25, p99Ratio: 1.5, errors: 0,
      journal: { calls: 10_000, writes: 400, syncs: 400, bytesWritten: 5_900_000, compactions: 0, fileBytes: 5_900_000, syncsPerCall: 0.04, writesPerCall: 0.04, bytesPerCall: 590 },
    }
    const deferred: DeferredRow = { kind: 'deferred', store: 'memory', tickets: 20_000, window: 64, submitPerSec: 15_000, collectPerSec: 30_000, ticketsPerSec: 10_000, submitP50Us: 4000, submitP99Us: 7000, errors: 0 }
    const md = queueMarkdown({
      machine: machineInfo(), argv: [],
      options: { quick: false, write: true, warmupMs: 500, measureMs: 2000, windows: [256], stores: ['memory', 'always'], tickets: 20_000, ticketWindow: 64, deferredStores: ['memory'], workers: 2, concurrency: 32, callTimeoutMs: 2000 },
      rows: [memory, durable, deferred],
    })
    expect(md).to.include('| in memory | 256 | 50.0k |  | 3000 µs | 20.0ms |  |  |  |  | 0 |')
    expect(md).to.include('| durable always | 256 | 12.5k | 0.25x | 12.0ms | 30.0ms | 1.50x | 0.040 | 0.040 | 590 | 0 |')
    expect(md).to.include('| in memory | 20000 | 64 | 15.0k | 4000 µs | 7000 µs | 30.0k | 10.0k |  |  |  |  | 0 |')
    expect(md).to.not.include('shim')
  })
})
