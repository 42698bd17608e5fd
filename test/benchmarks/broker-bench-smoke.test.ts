import { expect } from 'chai'
import { main } from '../../benchmarks/broker.bench.js'

describe('the broker bench (smoke)', function () {
  this.timeout(30_000)
  it('runs every system with forked workers, completes calls and stops its children', async () => {
    const lines: string[] = []
    const rows = await main(['--duration=150', '--workers=1', '--windows=1,4', '--concurrency=1,2'], (l) => lines.push(l))
    expect(rows.map((r) => `${r.system}/${r.window}${r.concurrency === undefined ? '' : `/c${r.concurrency}`}`)).to.deep.equal([
      'zrpc-direct/1', 'zrpc-direct/4', 'lbbroker/1', 'lbbroker/4', 'zrpc-broker/1', 'zrpc-broker/4',
      'zrpc-broker-io/64/c1', 'zrpc-broker-io/64/c2',
    ])
    for (const row of rows) expect(row.callsPerSecond, `${row.system} window ${row.window}`).to.be.above(0)
    expect(lines.filter((l) => l.startsWith('ratio'))).to.have.length(2)
  })
})
