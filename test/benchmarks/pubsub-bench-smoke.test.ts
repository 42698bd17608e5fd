import { expect } from 'chai'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)

describe('the pubsub bench (smoke)', function () {
  this.timeout(30_000)
  it('runs raw and typed with --quick, delivers messages, reports no more gaps than losses, and prints the ratio', async () => {
    const script = new URL('../../benchmarks/pubsub.bench.js', import.meta.url).pathname
    const { stdout } = await run(process.execPath, [script, '--quick'], { timeout: 25_000 })
    const rows = stdout.split('\n').filter((line) => /^\| \d+ \| (raw|typed)/.test(line))
    expect(rows).to.have.length(2)
    const cells = rows.map((row) => row.split('|').map((cell) => cell.trim().replace(/,/g, '')))
    for (const [, , , delivered] of cells) expect(Number(delivered)).to.be.above(0)
    // The typed row: a reported gap is a real loss, so gaps never exceed the messages that did not arrive.
    const [, , , , drops, gapReported] = cells[1]!
    expect(Number(gapReported)).to.be.at.most(Number(drops))
    expect(rows[1]).to.match(/\| \d+% \|$/)
  })
})
