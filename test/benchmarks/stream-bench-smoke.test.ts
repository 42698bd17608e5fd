import { expect } from 'chai'
import { main, streamMarkdown, type StreamRow } from '../../benchmarks/stream.bench.js'
import { machineInfo } from '../../benchmarks/harness/machine.js'

describe('the stream bench (smoke)', function () {
  this.timeout(60_000)

  it('measures unary calls/s and stream items/s, direct and through the broker, with forked servers, and writes nothing', async () => {
    const lines: string[] = []
    // --write is ignored with --quick: a smoke run leaves benchmarks/results alone.
    const rows = await main(['--quick', '--write', '--items=500', '--streams=4'], (l) => lines.push(l))
    const phases = ['unary/64/256/0', 'stream/64/16/1', 'stream/64/256/1', 'stream/64/16/4', 'stream/64/256/4', 'unary/4096/256/0', 'stream/4096/256/1']
    expect(rows.map((r) => `${r.mode}/${r.kind}/${r.payload}/${r.window}/${r.streams}`)).to.deep.equal([
      ...phases.map((p) => `direct/${p}`),
      ...phases.map((p) => `broker/${p}`),
    ])
    for (const row of rows) {
      const phase = `${row.mode} ${row.kind} ${row.payload} B window ${row.window} x${row.streams}`
      expect(row.errors, `${phase}: ${row.firstError ?? ''}`).to.equal(0)
      expect(row.perSec, phase).to.be.above(0)
      if (row.kind === 'unary') {
        expect(row.p50Us, phase).to.be.above(0)
        expect(row.p99Us, phase).to.be.at.least(row.p50Us!)
      } else {
        expect(row.ratio, phase).to.be.a('number').and.above(0)
        // 500 items a stream at thousands of items/s: every reader finishes some streams within the window.
        expect(row.streamsDone, phase).to.be.above(0)
      }
    }
    // One line per phase as it is measured, the table at the end, and no file written.
    expect(lines.filter((l) => / (calls|items)\/s {2}/.test(l) && !l.includes('|'))).to.have.length(rows.length)
    expect(lines.some((l) => l.includes('| mode | payload | what |'))).to.equal(true)
    expect(lines.some((l) => l.startsWith('I: wrote'))).to.equal(false)
  })

  it('renders the table with the ratio of items/s to calls/s from the same run', () => {
    const unary: StreamRow = { mode: 'direct', kind: 'unary', payload: 64, window: 256, streams: 0, perSec: 100_000, p50Us: 900, p99Us: 4000, errors: 0 }
    const stream: StreamRow = { mode: 'direct', kind: 'stream', payload: 64, window: 256, streams: 8, perSec: 450_000, streamsDone: 12, ratio: 4.5, errors: 0 }
    const md = streamMarkdown({ machine: machineInfo(), argv: [], options: { quick: false, write: true, warmupMs: 500, measureMs: 1500, items: 10_000, streams: 8, inFlight: 256, concurrency: 16, modes: ['direct'] }, rows: [unary, stream] })
    expect(md).to.include('| direct | 64 B | unary, 256 in flight | 100k calls/s |  | 900 µs | 4000 µs |  | 0 |')
    expect(md).to.include('| direct | 64 B | 8 streams, window 256 | 450k items/s | 4.50x |  |  | 12 | 0 |')
  })
})
