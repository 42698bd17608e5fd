import { expect } from 'chai'
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { promisify } from 'node:util'

const run = promisify(execFile)
const root = new URL('../../../', import.meta.url)

describe('the README on typed topics', function () {
  this.timeout(20_000)

  it('shows examples/topics.ts exactly, which runs and prints what the README promises', async () => {
    const readme = await readFile(new URL('README.md', root), 'utf8')
    const source = await readFile(new URL('examples/topics.ts', root), 'utf8')
    const block = /## Typed topics \(PUB\/SUB\)[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1]
    expect(block, 'a ```ts block under "## Typed topics (PUB/SUB)"').to.equal(source)
    const { stdout } = await run(process.execPath, [new URL('dist/examples/topics.js', root).pathname], { timeout: 15_000 })
    expect(stdout).to.equal('AAPL 1 187\nlate joiner got 187 from the last-value cache\n')
  })
})
