import { expect } from 'chai'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { Type } from 'typebox'
import { defineTopic, Publisher, Subscriber, waitForFlow } from '../../lib/index.js'
import { parseProxyArgs } from '../../lib/cli/proxy.js'
import { until } from '../helpers/endpoints.js'

const bin = new URL('../../../bin/zrpc.js', import.meta.url).pathname
const Ticks = defineTopic('ticks', Type.Integer())

describe('`zrpc proxy`', function () {
  this.timeout(15_000)
  let child: ChildProcess | undefined
  afterEach(() => {
    if (child?.exitCode === null) child.kill('SIGKILL')
    child = undefined
  })

  it('logs its endpoints, forwards typed messages, and exits 0 on SIGTERM', async () => {
    child = spawn(process.execPath, [bin, 'proxy', '--xsub', 'tcp://127.0.0.1:*', '--xpub', 'tcp://127.0.0.1:*'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout!.on('data', (chunk: Buffer) => (out += String(chunk)))
    await until(() => /subscribers connect to (\S+)/.test(out), 5000, 'the proxy to log its endpoints')
    const frontend = /publishers connect to (\S+)/.exec(out)![1]!
    const backend = /subscribers connect to (\S+)/.exec(out)![1]!
    const pub = new Publisher({ connect: frontend })
    const sub = new Subscriber({ connect: backend })
    try {
      const ticks = sub.subscribe(Ticks)
      await waitForFlow(pub, sub)
      await pub.publish(Ticks, 7)
      const got = await ticks.next()
      expect(got.value?.data).to.equal(7)
    } finally {
      await sub.close()
      await pub.close()
    }
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    const [code] = (await exited) as [number | null]
    expect(code).to.equal(0)
    expect(out).to.match(/proxy: stopped after \d+ messages/)
  })

  it('stops on SIGINT (Ctrl-C) as well, exit code 0', async () => {
    child = spawn(process.execPath, [bin, 'proxy', '--xsub', 'tcp://127.0.0.1:*', '--xpub', 'tcp://127.0.0.1:*'], { stdio: ['ignore', 'pipe', 'ignore'] })
    let out = ''
    child.stdout!.on('data', (chunk: Buffer) => (out += String(chunk)))
    await until(() => out.includes('subscribers connect to'), 5000, 'the proxy to start')
    const exited = once(child, 'exit')
    child.kill('SIGINT')
    expect(((await exited) as [number | null])[0]).to.equal(0)
    expect(out).to.match(/proxy: stopped/)
  })

  it('refuses missing or unknown arguments with exit code 2', async () => {
    expect(parseProxyArgs(['--xsub', 'tcp://127.0.0.1:1'])).to.be.a('string')
    expect(parseProxyArgs(['--xsub', 'a', '--bogus', 'b'])).to.be.a('string')
    expect(parseProxyArgs(['--xpub', 'b', '--xsub', 'a'])).to.deep.equal({ xsub: 'a', xpub: 'b' })
    expect(parseProxyArgs(['--xsub', 'a', '--xpub', 'b', '--max-message-size', '1048576', '--max-subscriptions', '500'])).to.deep.equal({
      xsub: 'a',
      xpub: 'b',
      maxMessageSize: 1_048_576,
      maxSubscriptions: 500,
    })
    expect(parseProxyArgs(['--xsub', 'a', '--xpub', 'b', '--max-message-size', '1000'])).to.match(/at least 65536/)
    expect(parseProxyArgs(['--xsub', 'a', '--xpub', 'b', '--max-subscriptions', '0'])).to.match(/positive/)
    child = spawn(process.execPath, [bin, 'proxy', '--xsub'], { stdio: 'ignore' })
    const [code] = (await once(child, 'exit')) as [number | null]
    expect(code).to.equal(2)
  })
})
