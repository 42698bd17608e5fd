import { expect } from 'chai'
import { brokerAims, main, type BrokerBenchRow } from '../../benchmarks/broker.bench.js'

describe('the broker bench (smoke)', function () {
  this.timeout(30_000)
  it('runs every system (raw-credit too) with forked workers, completes calls and stops its children', async () => {
    const lines: string[] = []
    const rows = await main(['--duration=150', '--workers=1', '--windows=1,4', '--concurrency=1,2'], (l) => lines.push(l))
    expect(rows.map((r) => `${r.system}/${r.window}${r.concurrency === undefined ? '' : `/c${r.concurrency}`}`)).to.deep.equal([
      'zrpc-direct/1', 'zrpc-direct/4', 'lbbroker/1', 'lbbroker/4', 'raw-credit/1', 'raw-credit/4', 'zrpc-broker/1', 'zrpc-broker/4',
      'zrpc-broker-io/64/c1', 'zrpc-broker-io/64/c2',
    ])
    for (const row of rows) expect(row.callsPerSecond, `${row.system} window ${row.window}`).to.be.above(0)
    expect(lines.filter((l) => l.startsWith('ratio'))).to.have.length(4)
    // Windows 1 and 4 with one worker: the aim (2 workers, 256 in flight) is reported as not measured, never as a miss.
    expect(lines.filter((l) => l.startsWith('aim'))).to.have.length(2).and.satisfy((aims: string[]) => aims.every((l) => l.endsWith(')') && l.includes('not measured')))
  })

  it('judges the broker aim from zrpc-broker, raw-credit and zrpc-direct at 2 workers and 256 in flight', () => {
    const row = (system: BrokerBenchRow['system'], workers: number, callsPerSecond: number): BrokerBenchRow => ({ system, workers, window: 256, callsPerSecond })
    const aims = brokerAims([row('zrpc-direct', 1, 100_000), row('raw-credit', 2, 10_000), row('zrpc-broker', 2, 45_000), row('zrpc-broker', 1, 90_000)])
    expect(aims.map((a) => [a.name, a.ratio, a.met])).to.deep.equal([
      ['zrpc-broker/raw-credit', 4.5, false],
      ['zrpc-broker/zrpc-direct', 0.45, true],
    ])
  })
})
