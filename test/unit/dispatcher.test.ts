import { expect } from 'chai'
import { RpcError } from '../../lib/errors.js'
import { Kind, parseFrame, type RequestEnvelope } from '../../lib/codec/envelope.js'
import { Dispatcher, type CallContext, type DispatcherOptions, type RawHandler } from '../../lib/rpc/dispatcher.js'
import { bytesOf } from '../../lib/transport/send-queue.js'
import { sleep, until } from '../helpers/endpoints.js'

/** A dispatcher whose one method waits until the test releases it; answers are recorded per peer. */
function harness(options: DispatcherOptions = {}) {
  const started: Array<{ peer: string; id: number; ctx: CallContext; done: () => void }> = []
  const answers: Array<{ peer: string; id: number; kind: number; code?: string; details?: unknown }> = []
  const handler: RawHandler = (_params, ctx) =>
    new Promise((resolve) => started.push({ peer: ctx.metadata['peer'] ?? '', id: Number(ctx.metadata['id']), ctx, done: () => resolve(new Uint8Array([0xf6])) }))
  const dispatcher = new Dispatcher((service, method) => (service === 's' && method === 'wait' ? handler : undefined), options)
  let lastId = 0
  const call = (peer: string, opts: { id?: number; timeoutMs?: number; params?: Uint8Array } = {}): number => {
    const id = opts.id ?? ++lastId
    const request: RequestEnvelope = {
      kind: Kind.Request,
      id,
      service: 's',
      method: 'wait',
      timeoutMs: opts.timeoutMs ?? 10_000,
      metadata: { peer, id: String(id) },
      params: opts.params ?? new Uint8Array([0xa0]),
    }
    dispatcher.handle(request, peer, (frame) => {
      for (const env of parseFrame(bytesOf(frame))) {
        if (env.kind === Kind.Reply) answers.push({ peer, id: env.id, kind: env.kind })
        else if (env.kind === Kind.Error) answers.push({ peer, id: env.id, kind: env.kind, code: env.code, details: env.details })
      }
    })
    return id
  }
  return { dispatcher, started, answers, call }
}

describe('dispatcher: duplicate call ids from one peer', function () {
  this.timeout(2000)

  it('drops a REQUEST reusing the id of a running call, sends nothing for it, and counts it', async () => {
    const { dispatcher, started, answers, call } = harness()
    call('a', { id: 7 })
    call('a', { id: 7 })
    expect(started).to.have.length(1)
    expect(answers).to.deep.equal([])
    expect(dispatcher.stats.duplicateIds).to.equal(1)
    started[0]!.done()
    await until(() => answers.length === 1)
    expect(answers[0]).to.include({ id: 7, kind: Kind.Reply })
  })

  it('accepts the same id from another peer, and from the same peer once the first call ended', async () => {
    const { dispatcher, started, answers, call } = harness()
    call('a', { id: 7 })
    call('b', { id: 7 })
    expect(started).to.have.length(2)
    started[0]!.done()
    await until(() => answers.length === 1)
    call('a', { id: 7 })
    expect(started).to.have.length(3)
    expect(dispatcher.stats.duplicateIds).to.equal(0)
  })

  it('accepts an id again once the first call was given up (deadline passed), its handler still running', async () => {
    const { dispatcher, started, call } = harness()
    call('a', { id: 9, timeoutMs: 20 })
    await sleep(40)
    call('a', { id: 9 })
    expect(started).to.have.length(2)
    expect(dispatcher.stats.duplicateIds).to.equal(0)
  })
})

describe('dispatcher: fair share per peer', function () {
  this.timeout(2000)

  it('refuses a peer past maxPerPeer with RESOURCE_EXHAUSTED { notStarted: true }, while another peer is served', () => {
    const { dispatcher, started, answers, call } = harness({ maxConcurrent: 8, maxQueued: 100, maxPerPeer: 5 })
    for (let i = 0; i < 20; i++) call('greedy')
    call('honest')
    expect(started.filter((s) => s.peer === 'honest')).to.have.length(1)
    expect(answers).to.have.length(15)
    for (const a of answers) expect(a).to.deep.include({ peer: 'greedy', code: 'RESOURCE_EXHAUSTED', details: { notStarted: true } })
    expect(dispatcher.stats.rejectedPeerShare).to.equal(15)
  })

  it('keeps a quarter of the handler slots for other peers by default (maxConcurrentPerPeer)', () => {
    const { dispatcher, started, call } = harness({ maxConcurrent: 8, maxQueued: 100 })
    for (let i = 0; i < 20; i++) call('greedy')
    expect(started).to.have.length(6)
    expect(dispatcher.stats.queued).to.equal(14)
    call('honest')
    call('honest')
    expect(started.filter((s) => s.peer === 'honest')).to.have.length(2)
  })

  it('starts queued calls one peer at a time, in turn', async () => {
    const { started, call } = harness({ maxConcurrent: 2, maxConcurrentPerPeer: 2, maxQueued: 100 })
    call('a')
    call('a')
    for (let i = 0; i < 4; i++) call('a')
    for (let i = 0; i < 2; i++) call('b')
    for (let i = 0; i < 4; i++) {
      started[i]!.done()
      await until(() => started.length === 3 + i)
    }
    expect(started.slice(2).map((s) => s.peer)).to.deep.equal(['a', 'b', 'a', 'b'])
  })

  it('bounds the params bytes of queued calls per peer and in total, refusing { notStarted: true }', () => {
    const params = new Uint8Array(10_000)
    const { dispatcher, answers, call } = harness({ maxConcurrent: 1, maxQueued: 100, maxQueuedBytes: 50_000, maxQueuedBytesPerPeer: 25_000 })
    call('a')
    for (let i = 0; i < 5; i++) call('a', { params })
    for (let i = 0; i < 5; i++) call('b', { params })
    for (let i = 0; i < 5; i++) call('c', { params })
    expect(dispatcher.stats.queued).to.equal(4)
    expect(dispatcher.stats.queuedBytes).to.be.at.most(50_000)
    expect(dispatcher.stats.rejectedBytes).to.equal(11)
    for (const a of answers) expect(a).to.deep.include({ code: 'RESOURCE_EXHAUSTED', details: { notStarted: true } })
  })
})

describe('dispatcher: a peer that leaves', function () {
  this.timeout(2000)

  it('aborts its running calls with CANCELLED, drops its queued ones, sends nothing, and counts them', async () => {
    const { dispatcher, started, answers, call } = harness({ maxConcurrent: 2, maxConcurrentPerPeer: 2 })
    for (let i = 0; i < 5; i++) call('gone')
    call('stays')
    const signals = started.filter((s) => s.peer === 'gone').map((s) => s.ctx.signal)
    dispatcher.peerLeft('gone')
    expect(signals.map((s) => (s.reason as RpcError).code)).to.deep.equal(['CANCELLED', 'CANCELLED'])
    expect(dispatcher.stats.peerGone).to.equal(5)
    expect(dispatcher.stats.queued).to.equal(1)
    for (const s of started) s.done()
    await until(() => started.length === 3)
    started[2]!.done()
    await until(() => answers.length === 1)
    expect(answers[0]).to.include({ peer: 'stays', kind: Kind.Reply })
    expect(dispatcher.stats.peers).to.equal(0)
  })
})

describe('dispatcher: time', function () {
  this.timeout(2000)

  for (const timeoutMs of [2 ** 31, 2 ** 53 - 1]) {
    it(`does not abort a handler with a budget of ${timeoutMs} ms`, async () => {
      const { started, answers, call } = harness()
      call('a', { timeoutMs })
      const signal = started[0]!.ctx.signal
      await sleep(50)
      expect(signal.aborted).to.equal(false)
      started[0]!.done()
      await until(() => answers.length === 1)
      expect(answers[0]).to.include({ kind: Kind.Reply })
    })
  }
})

describe('dispatcher: closing', function () {
  this.timeout(2000)

  it('refuses new and queued calls UNAVAILABLE { notStarted: true }, and never waits past its grace for a handler that ignores its signal', async () => {
    const { dispatcher, answers, call } = harness({ maxConcurrent: 1 })
    call('a')
    call('a')
    const started = Date.now()
    const closing = dispatcher.close(100)
    call('b')
    await closing
    expect(Date.now() - started).to.be.below(1000)
    const byId = new Map(answers.map((a) => [a.id, a]))
    expect(byId.get(2)).to.deep.include({ code: 'UNAVAILABLE', details: { notStarted: true } })
    expect(byId.get(3)).to.deep.include({ code: 'UNAVAILABLE', details: { notStarted: true } })
    expect(byId.get(1)).to.include({ code: 'UNAVAILABLE' })
    expect(byId.get(1)!.details).to.equal(null)
    expect(dispatcher.stats.rejectedClosing).to.equal(1)
  })
})

describe('dispatcher: queued params', function () {
  it('a queued call keeps a copy of its params, not the whole frame they came in (Buffer#slice would be a view)', async () => {
    const seen: Uint8Array[] = []
    let release: () => void = () => {}
    const dispatcher = new Dispatcher(() => (params) => {
      seen.push(params)
      return new Promise((resolve) => (release = () => resolve(new Uint8Array([0xf6]))))
    }, { maxConcurrent: 1 })
    const frame = Buffer.alloc(1 << 20)
    const request = (id: number): RequestEnvelope => ({ kind: Kind.Request, id, service: 's', method: 'm', timeoutMs: 10_000, metadata: null, params: frame.subarray(id * 10, id * 10 + 1) })
    dispatcher.handle(request(1), 'a', () => {})
    dispatcher.handle(request(2), 'a', () => {}) // queued behind the first
    expect(dispatcher.stats.queued).to.equal(1)
    release()
    await until(() => seen.length === 2)
    expect(seen[1]!.buffer.byteLength).to.be.lessThan(1024)
    release()
  })
})
