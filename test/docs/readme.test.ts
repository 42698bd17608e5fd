import { expect } from 'chai'
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { promisify } from 'node:util'
import { main } from '../../lib/cli/main.js'
import { runDemo } from '../../lib/cli/demo.js'

const run = promisify(execFile)
const root = new URL('../../../', import.meta.url)

describe('the README', function () {
  this.timeout(20_000)

  // Every complete program in the README is a file in examples/, shown there byte for byte and run here.
  const examples = [
    { section: 'Quick start', file: 'quickstart', prints: '1 + 2 = 3\nslow call failed with DEADLINE_EXCEEDED\n' },
    { section: 'Streams', file: 'streams', prints: 'sum of 1..100 = 5050\nstreams closed on the server: 2\n' },
    { section: 'Through a broker', file: 'broker', prints: '2 + 3 = 5\ncalc is served: true\n' },
    { section: 'A work queue', file: 'queue', prints: 'ticket issued: 32 hex digits\nreport for month 11\n' },
    { section: 'Typed topics (PUB/SUB)', file: 'topics', prints: 'AAPL 1 187\nlate joiner got 187 from the last-value cache\n' },
    {
      section: 'When things go wrong',
      file: 'failure-modes',
      prints: 'invalid endpoint "localhost:5555": missing transport (tcp://, ipc:// or inproc://), e.g. tcp://localhost:5555\nUNAVAILABLE true\nhello again\n',
    },
  ]
  for (const { section, file, prints } of examples) {
    it(`shows "${section}" exactly as examples/${file}.ts, which runs and prints what it says`, async () => {
      const readme = await readFile(new URL('README.md', root), 'utf8')
      const source = await readFile(new URL(`examples/${file}.ts`, root), 'utf8')
      const heading = section.replace(/[()]/g, '\\$&')
      const block = new RegExp(`## ${heading}[\\s\\S]*?\`\`\`ts\\n([\\s\\S]*?)\`\`\``).exec(readme)?.[1]
      expect(block, `a ts block under "## ${section}"`).to.equal(source)
      const { stdout } = await run(process.execPath, [new URL(`dist/examples/${file}.js`, root).pathname], { timeout: 15_000 })
      expect(stdout).to.equal(prints)
    })
  }

  it('works from plain JavaScript through the package name, as a user of the built package imports it', async () => {
    const script = `
      import { Type } from 'typebox'
      import { defineService, RpcServer, RpcClient } from 'zrpc'
      const S = defineService('s', { hi: { params: Type.Object({ n: Type.String() }), result: Type.String() } })
      const server = new RpcServer().implement(S, { hi: ({ n }) => 'hi ' + n })
      const [ep] = await server.bind('tcp://127.0.0.1:*')
      const client = new RpcClient({ connect: ep })
      console.log(await client.service(S).hi({ n: 'js' }))
      await client.close(); await server.close()`
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: root.pathname, timeout: 15_000 })
    expect(stdout).to.equal('hi js\n')
  })

  it('names the two commands a newcomer runs, and they exist in package.json', async () => {
    const readme = await readFile(new URL('README.md', root), 'utf8')
    const pkg = JSON.parse(await readFile(new URL('package.json', root), 'utf8')) as { scripts: Record<string, string> }
    expect(readme).to.include('npm install && npm run demo')
    expect(readme).to.include('npm test')
    expect(pkg.scripts).to.have.property('demo')
    expect(pkg.scripts).to.have.property('test')
  })
})

describe('the demo', function () {
  this.timeout(20_000)

  it('makes typed calls and shows a deadline, a cancel and a validation error, then closes', async () => {
    const lines: string[] = []
    const summary = await runDemo((line) => lines.push(line))
    expect(summary.calls).to.equal(603)
    expect(summary.errors).to.deep.equal({ DEADLINE_EXCEEDED: 1, CANCELLED: 1, INVALID_ARGUMENT: 1 })
    // Through the broker: every one of the three workers served some of the 300 calls.
    expect(summary.perWorker).to.have.length(3)
    expect(summary.perWorker.reduce((a, b) => a + b, 0)).to.equal(300)
    for (const served of summary.perWorker) expect(served).to.be.above(0)
    expect(summary.updates).to.equal(5)
    expect(lines).to.include('topic: a late joiner for sku-0-0 got 629 cents from the last-value cache')
    expect(lines.at(-1)).to.match(/^closed/)
  })

  it('runs as `zrpc demo` from the bin script and exits 0 by itself', async () => {
    const { stdout } = await run(process.execPath, [new URL('bin/zrpc.js', root).pathname, 'demo'], { timeout: 15_000 })
    expect(stdout).to.match(/typed calls: 603/)
  })
})

describe('the zrpc command line', () => {
  it('prints usage for help (exit 0) and refuses unknown commands (exit 2)', async () => {
    const out: string[] = []
    const write = process.stdout.write.bind(process.stdout)
    const writeErr = process.stderr.write.bind(process.stderr)
    process.stdout.write = ((s: string) => out.push(s)) as unknown as typeof process.stdout.write
    process.stderr.write = ((s: string) => out.push(s)) as unknown as typeof process.stderr.write
    try {
      expect(await main(['help'])).to.equal(0)
      expect(await main(['frobnicate'])).to.equal(2)
    } finally {
      process.stdout.write = write
      process.stderr.write = writeErr
    }
    expect(out.join('')).to.match(/usage: zrpc/).and.match(/unknown command "frobnicate"/)
  })
})
