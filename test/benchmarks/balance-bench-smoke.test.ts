import { expect } from 'chai'
import { balanceMarkdown, main } from '../../benchmarks/balance.bench.js'

describe('the balancing bench (smoke)', function () {
  this.timeout(60_000)

  it('runs every balancer against four server processes, one slow, and reports throughput, latency and the slow share', async () => {
    const lines: string[] = []
    const rows = await main(['--quick', '--windows=16', '--slow-ms=5'], (l) => lines.push(l))
    expect(rows.map((r) => r.balancer)).to.deep.equal(['round-robin', 'least-outstanding', 'power-of-two'])
    for (const row of rows) {
      expect(row.errors, row.balancer).to.equal(0)
      expect(row.callsPerSec, row.balancer).to.be.above(0)
      expect(row.p50Us, row.balancer).to.be.at.most(row.p99Us)
      expect(row.slowShare, row.balancer).to.be.within(0, 1)
    }
    // Round robin gives each of the four servers its quarter, the slow one included.
    expect(rows[0]!.slowShare).to.be.within(0.2, 0.3)
    expect(lines).to.have.length(3)
  })

  it('renders a table with ratios to round-robin from the same run', () => {
    const row = (balancer: 'round-robin' | 'power-of-two', callsPerSec: number, p99Us: number, slowShare: number) => ({ balancer, window: 64, callsPerSec, p50Us: 100, p99Us, slowShare, errors: 0 })
    const md = balanceMarkdown([row('round-robin', 1000, 8000, 0.25), row('power-of-two', 3000, 2000, 0.02)], 5)
    expect(md).to.include('| power-of-two | 64 | 3.0k | 100 µs | 2000 µs | 3.00x | 0.25x | 2.0 % |')
    expect(md).to.include('| round-robin | 64 | 1.0k | 100 µs | 8000 µs |  |  | 25.0 % |')
  })
})
