import { expect } from 'chai'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { BrokerAdmin, RpcClient, RpcServer, curveKeyPair } from '../../lib/index.js'
import { runBroker } from '../../lib/cli/broker.js'
import { Calc, calcHandlers } from '../helpers/calc.js'
import { until } from '../helpers/endpoints.js'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { deadEndpoint } from './client-raw-server.js'
import { Dealer } from 'zeromq'
import { encodeCbor } from '../../lib/codec/cbor.js'
import { encodeRequest, parseFrame } from '../../lib/codec/envelope.js'

const BIN = fileURLToPath(new URL('../../../bin/zrpc.js', import.meta.url))

describe('zrpc broker (CLI)', function () {
  this.timeout(20_000)

  it('runs a broker, logs workers joining and leaving, serves calls, and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, [BIN, 'broker', '--bind', 'tcp://127.0.0.1:*', '--heartbeat', '100'], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
    const exited = once(child, 'exit')
    try {
      await until(() => /listening on (\S+)/.test(out), 10_000, 'broker listening')
      const endpoint = /listening on (\S+)/.exec(out)![1]!
      const server = new RpcServer().implement(Calc, calcHandlers())
      await server.connectBroker(endpoint, { heartbeatMs: 100 })
      const client = new RpcClient({ broker: endpoint, timeoutMs: 5000 })
      await until(() => out.includes('joined calc'), 5000, 'join line')
      expect(await client.service(Calc).add({ a: 2, b: 3 })).to.equal(5)
      await client.close()
      await server.close()
      await until(() => out.includes('left calc'), 5000, 'leave line')
    } finally {
      child.kill('SIGTERM')
    }
    const [code] = await exited
    expect(code).to.equal(0)
    expect(out).to.include('SIGTERM: shutting down')
    expect(out).to.include('broker closed')
    expect(out).to.not.include('zrpc.broker')
  })

  it('--durable DIR keeps accepted calls across a restart of the command: the waiting caller is answered by the next one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'zrpc-cli-durable-'))
    const endpoint = await deadEndpoint()
    const start = async (): Promise<{ child: ReturnType<typeof spawn>; output: () => string; exited: Promise<unknown[]> }> => {
      const child = spawn(process.execPath, [BIN, 'broker', '--bind', endpoint, '--heartbeat', '100', '--request-expiry', '60000', '--durable', dir], { stdio: ['ignore', 'pipe', 'inherit'] })
      let out = ''
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
      const exited = once(child, 'exit')
      await until(() => out.includes('listening on'), 10_000, 'broker listening')
      return { child, output: () => out, exited }
    }
    // waitForReady: the client exists before the broker listens; its first attempts are refused.
    const client = new RpcClient({ broker: endpoint, timeoutMs: 20_000, waitForReady: true })
    const server = new RpcServer().implement(Calc, calcHandlers())
    let running = await start()
    try {
      const sum = client.service(Calc).add({ a: 40, b: 2 }) // no worker yet: it waits in the broker, on disk
      const admin = new RpcClient({ broker: endpoint, timeoutMs: 5000 })
      try {
        for (let tries = 0; (await admin.service(BrokerAdmin).services({})).durable?.calls !== 1; tries++) {
          if (tries > 100) throw new Error('the call never reached the broker’s record')
          await new Promise((resolve) => setTimeout(resolve, 20))
        }
      } finally {
        await admin.close()
      }
      running.child.kill('SIGTERM')
      await running.exited
      running = await start()
      expect(running.output()).to.include(`(durable in ${dir}: 1 calls read back)`)
      await server.connectBroker(endpoint, { heartbeatMs: 100 })
      expect(await sum).to.equal(42)
    } finally {
      await client.close()
      await server.close()
      running.child.kill('SIGTERM')
      await running.exited
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('--curve path --allow file: a CURVE broker from the key pair zrpc keygen writes, letting in only the keys in the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'zrpc-cli-curve-'))
    const brokerKeys = curveKeyPair()
    const alice = curveKeyPair()
    const mallory = curveKeyPair()
    const worker = curveKeyPair()
    await writeFile(join(dir, 'broker.key'), `${brokerKeys.secretKey}\n`, { mode: 0o600 })
    await writeFile(join(dir, 'broker.pub'), `${brokerKeys.publicKey}\n`)
    await writeFile(join(dir, 'allowed'), `${alice.publicKey}\n${worker.publicKey}\n`)
    const endpoint = await deadEndpoint()
    const child = spawn(process.execPath, [BIN, 'broker', '--bind', endpoint, '--heartbeat', '100', '--curve', join(dir, 'broker'), '--allow', join(dir, 'allowed')], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
    const exited = once(child, 'exit')
    const server = new RpcServer().implement(Calc, calcHandlers())
    const good = new RpcClient({ broker: endpoint, timeoutMs: 5000, waitForReady: true, curve: { serverKey: brokerKeys.publicKey, ...alice } })
    const bad = new RpcClient({ broker: endpoint, timeoutMs: 5000, curve: { serverKey: brokerKeys.publicKey, ...mallory } })
    try {
      await until(() => out.includes('listening on'), 10_000, 'broker listening')
      await server.connectBroker(endpoint, { heartbeatMs: 100, curve: { serverKey: brokerKeys.publicKey, ...worker } })
      await until(() => out.includes('joined calc'), 5000, 'the worker')
      expect(await good.service(Calc).add({ a: 1, b: 2 })).to.equal(3)
      const err = await bad.service(Calc).add({ a: 1, b: 2 }).then(() => undefined, (e: unknown) => e)
      expect(err).to.have.property('code', 'UNAUTHENTICATED')
      await until(() => out.includes(`key ${mallory.publicKey} is not allowed`), 2000, 'the refusal logged')
    } finally {
      await good.close()
      await bad.close()
      await server.close({ timeoutMs: 200 })
      child.kill('SIGTERM')
      await exited
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('refuses bad options with exit code 2, on the error writer, not the output', async () => {
    const printed: string[] = []
    const errors: string[] = []
    const io = { print: (l: string) => printed.push(l), error: (l: string) => errors.push(l), stopped: new Promise<string>(() => undefined) }
    expect(await runBroker(['--heartbeat', 'soon'], io)).to.equal(2)
    expect(await runBroker(['--nope'], io)).to.equal(2)
    expect(errors.join('\n')).to.include('--heartbeat must be a positive integer').and.include("'--nope'")
    expect(printed).to.deep.equal([])
    expect(await runBroker(['--max-queue-bytes', '0'], io)).to.equal(2)
    expect(await runBroker(['--max-message-size', '1000'], io)).to.equal(2)
    expect(errors.join('\n')).to.include('--max-queue-bytes must be a positive integer').and.include('--max-message-size must be at least 65536')
    expect(await runBroker(['--sync', 'always'], io)).to.equal(2)
    expect(await runBroker(['--durable', '/tmp/x', '--sync', 'sometimes'], io)).to.equal(2)
    expect(errors.join('\n')).to.include('--sync takes always, batch or none, with --durable')
    expect(await runBroker(['--allow', '/tmp/x'], io)).to.equal(2)
    expect(await runBroker(['--curve', '/nonexistent/zrpc-key'], io)).to.equal(2)
    expect(errors.join('\n')).to.include('--allow needs --curve').and.include('cannot read the key pair /nonexistent/zrpc-key.key')
    expect(printed).to.deep.equal([])
  })

  it('--max-queue-bytes bounds the bytes queued per service: RESOURCE_EXHAUSTED { notStarted } past it', async () => {
    const printed: string[] = []
    let stop!: (signal: string) => void
    const io = { print: (l: string) => printed.push(l), error: (l: string) => printed.push(l), stopped: new Promise<string>((resolve) => (stop = resolve)) }
    const running = runBroker(['--bind', 'tcp://127.0.0.1:*', '--max-queue-bytes', '150000', '--request-expiry', '5000'], io)
    await until(() => printed.some((l) => l.startsWith('broker listening on')), 10_000, 'broker listening')
    const endpoint = printed.find((l) => l.startsWith('broker listening on'))!.slice('broker listening on '.length)
    const dealer = new Dealer({ linger: 0, receiveTimeout: 5000 })
    dealer.connect(endpoint)
    try {
      const params = encodeCbor({ data: 'x'.repeat(100_000) })
      for (const id of [1, 2]) await dealer.send([Buffer.alloc(0), Buffer.from('MDPC01'), Buffer.from('later'), encodeRequest(id, 'later', 'echo', 5000, null, params)])
      const [, , , frame] = await dealer.receive()
      expect(parseFrame(frame!)[0]).to.deep.include({ id: 2, code: 'RESOURCE_EXHAUSTED', details: { notStarted: true, broker: true } })
    } finally {
      dealer.close()
      stop('SIGTERM')
    }
    expect(await running).to.equal(0)
  })

  it('--help lists every option', async () => {
    const printed: string[] = []
    const io = { print: (l: string) => printed.push(l), error: (l: string) => printed.push(l), stopped: new Promise<string>(() => undefined) }
    expect(await runBroker(['--help'], io)).to.equal(0)
    for (const option of ['--max-queue-bytes', '--max-total-queue-bytes', '--max-unknown-services', '--max-message-size', '--request-expiry']) {
      expect(printed.join('\n')).to.include(option)
    }
  })
})
