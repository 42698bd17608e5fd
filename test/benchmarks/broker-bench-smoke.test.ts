import { expect } from 'chai'
import { brokerAims, main, type BrokerBenchRow } from '../../benchmarks/broker.bench.js'
import { brokerTable } from '../../benchmarks/harness/broker-report.js'

describe('the broker bench (smoke)', function () {
  this.timeout(60_000)
  it('runs every system (raw-credit too) at both payloads with forked workers, reports calls/s, p50 and p99, and stops its children', async () => {
    const lines: string[] = []
    // zrpc-broker-io keeps 64 calls in flight on a 2 ms handler: at concurrency 2 a round trip takes ~70 ms, and the
    // measured window must be longer than that for any call to be both issued and completed in it (p50 and p99).
    const rows = await main(['--duration=300', '--warmup-ms=100', '--workers=1', '--windows=1,4', '--concurrency=2,8'], (l) => lines.push(l))
    // Each system runs both payloads (the default) at both windows; zrpc-broker-io one window (64) per concurrency.
    const phases = (system: string): string[] => [64, 4096].flatMap((payload) => [`${system}/1/${payload}`, `${system}/4/${payload}`])
    expect(rows.map((r) => `${r.system}/${r.window}/${r.payload}${r.concurrency === undefined ? '' : `/c${r.concurrency}`}`)).to.deep.equal([
      ...phases('zrpc-direct'), ...phases('lbbroker'), ...phases('raw-credit'), ...phases('zrpc-broker'),
      'zrpc-broker-io/64/64/c2', 'zrpc-broker-io/64/4096/c2', 'zrpc-broker-io/64/64/c8', 'zrpc-broker-io/64/4096/c8',
    ])
    for (const row of rows) {
      const phase = `${row.system} window ${row.window} payload ${row.payload}`
      expect(row.errors, `${phase}: ${row.firstError ?? ''}`).to.equal(0)
      expect(row.callsPerSecond, phase).to.be.above(0)
      expect(row.p50Us, phase).to.be.a('number').and.be.above(0)
      expect(row.p99Us, phase).to.be.at.least(row.p50Us)
    }
    // One line per phase as it is measured, then two ratio lines per (workers, window, payload).
    expect(lines.filter((l) => l.includes(' calls/s') && !l.includes('|'))).to.have.length(rows.length)
    expect(lines.some((l) => l.includes('| system | workers | in flight | payload |'))).to.equal(true)
    expect(lines.filter((l) => l.startsWith('ratio'))).to.have.length(8)
    // Windows 1 and 4 with one worker: the aim (2 workers, 256 in flight) is reported as not measured, never as a miss.
    expect(lines.filter((l) => l.startsWith('aim'))).to.have.length(2).and.satisfy((aims: string[]) => aims.every((l) => l.endsWith(')') && l.includes('not measured')))
  })

  const row = (system: BrokerBenchRow['system'], workers: number, callsPerSecond: number, payload = 64): BrokerBenchRow => ({
    system, workers, window: 256, payload, callsPerSecond, p50Us: 1000, p99Us: 2000, errors: 0,
  })

  it('judges the broker aim from zrpc-broker, raw-credit and zrpc-direct at 2 workers, 256 in flight and 64 B', () => {
    const aims = brokerAims([
      row('zrpc-direct', 1, 50_000, 4096), row('zrpc-broker', 2, 1_000, 4096), row('raw-credit', 2, 100, 4096),
      row('zrpc-direct', 1, 100_000), row('raw-credit', 2, 10_000), row('zrpc-broker', 2, 45_000), row('zrpc-broker', 1, 90_000),
    ])
    expect(aims.map((a) => [a.name, a.ratio, a.met])).to.deep.equal([
      ['zrpc-broker/raw-credit', 4.5, false],
      ['zrpc-broker/zrpc-direct', 0.45, true],
    ])
  })

  it('reports the aim as not measured when the run had no 64 B phases', () => {
    const aims = brokerAims([row('zrpc-direct', 1, 50_000, 4096), row('zrpc-broker', 2, 1_000, 4096), row('raw-credit', 2, 100, 4096)])
    expect(aims.map((a) => [a.ratio, a.met])).to.deep.equal([[undefined, false], [undefined, false]])
  })

  it('tables each row with its ratios to raw-credit (same workers) and zrpc-direct', () => {
    const table = brokerTable([row('zrpc-direct', 1, 100_000), row('raw-credit', 2, 10_000), row('zrpc-broker', 2, 45_000)])
    expect(table.split('\n').slice(2)).to.deep.equal([
      '| zrpc-direct | 1 | 256 | 64 B | 100k | 1000 | 2000 |  |  |',
      '| raw-credit | 2 | 256 | 64 B | 10.0k | 1000 | 2000 |  | 0.10x |',
      '| zrpc-broker | 2 | 256 | 64 B | 45.0k | 1000 | 2000 | 4.50x | 0.45x |',
    ])
  })
})
