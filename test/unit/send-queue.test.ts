import { expect } from 'chai'
import { SendQueue, type FrameSink } from '../../lib/transport/send-queue.js'

/** A socket stand-in that, like zeromq.js, throws EBUSY if a second send starts before the first ends. */
class FakeSocket implements FrameSink {
  closed = false
  busy = false
  sent: Array<Buffer | Buffer[]> = []
  private release: Array<() => void> = []
  send(message: Buffer | Buffer[]): Promise<void> {
    if (this.busy) throw new Error('EBUSY: socket is busy writing')
    this.busy = true
    this.sent.push(message)
    return new Promise((resolve) =>
      this.release.push(() => {
        this.busy = false
        resolve()
      }),
    )
  }
  /** Completes the send in flight. */
  finish(): void {
    this.release.shift()?.()
  }
}

/** Lets the pump take its next step: a send completion plus the one-turn wait before the next batch. */
const flush = async (): Promise<void> => {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r))
}
const b = (s: string): Buffer => Buffer.from(s)

describe('SendQueue: one writer per socket', () => {
  it('never starts a second send while one is in flight, whatever the number of senders', async () => {
    const socket = new FakeSocket()
    const queue = new SendQueue(socket, { coalesce: false })
    for (let i = 0; i < 50; i++) expect(queue.push(b(`m${i}`))).to.equal(true)
    while (socket.sent.length < 50) {
      socket.finish()
      await flush()
    }
    socket.finish()
    await queue.idle()
    expect(socket.sent.map(String)).to.deep.equal(Array.from({ length: 50 }, (_, i) => `m${i}`))
  })

  it('joins what waited behind a send into one frame per peer, in order', async () => {
    const socket = new FakeSocket()
    const queue = new SendQueue(socket)
    queue.push(b('a1'), b('A'))
    queue.push(b('a2'), b('A'))
    queue.push(b('b1'), b('B'))
    queue.push(b('a3'), b('A'))
    socket.finish()
    await flush()
    socket.finish()
    await flush()
    socket.finish()
    await queue.idle()
    const frames = socket.sent.map((m) => (m as Buffer[]).map(String))
    expect(frames).to.deep.equal([
      ['A', 'a1'],
      ['A', 'a2a3'],
      ['B', 'b1'],
    ])
    expect(queue.counters).to.include({ messages: 4, frames: 3 })
  })

  it('joins what callers push across one tick even when each send resolves at once, as zeromq.js sends do', async () => {
    const sent: string[] = []
    const socket: FrameSink = { closed: false, send: (m) => (sent.push(String(m)), Promise.resolve()) }
    const queue = new SendQueue(socket)
    queue.push(b('first'))
    // Ten callers, each in its own microtask, as replies resolved one after another would be.
    for (let i = 0; i < 10; i++) await Promise.resolve().then(() => queue.push(b(`${i}`)))
    await queue.idle()
    expect(sent).to.deep.equal(['first', '0123456789'])
  })

  it('joins bodies behind a head only when they are joinable and share the head array; a message that may not be joined keeps its place', async () => {
    const socket = new FakeSocket()
    const queue = new SendQueue(socket)
    const toX = [b('hX')]
    const toY = [b('hY')]
    queue.push(b('first'), b('A'))
    queue.pushWithHead(toX, b('x1'), b('A'), true)
    queue.pushWithHead(toY, b('y1'), b('A'), true)
    queue.pushWithHead(toX, b('x2'), b('A'), true)
    // Same bytes, another array: a head is matched by identity, so this one starts its own group.
    queue.pushWithHead([b('hX')], b('x3'), b('A'), true)
    queue.pushWithHead(toX, b('cmd'), b('A'))
    // After a message that may not be joined, later ones for the same peer stay behind it.
    queue.pushWithHead(toX, b('x4'), b('A'), true)
    queue.pushWithHead(toX, b('x5'), b('A'), true)
    queue.pushWithHead(toX, b('bx'), b('B'), true)
    for (let i = 0; i < 8; i++) {
      socket.finish()
      await flush()
    }
    await queue.idle()
    expect(socket.sent.map((m) => (m as Buffer[]).map(String))).to.deep.equal([
      ['A', 'first'],
      ['A', 'hX', 'x1x2'],
      ['A', 'hY', 'y1'],
      ['A', 'hX', 'x3'],
      ['A', 'hX', 'cmd'],
      ['A', 'hX', 'x4x5'],
      ['B', 'hX', 'bx'],
    ])
    expect(queue.counters).to.include({ messages: 9, frames: 7 })
  })

  it('does not join past maxFrameBytes', async () => {
    const socket = new FakeSocket()
    const queue = new SendQueue(socket, { maxFrameBytes: 4 })
    for (const m of ['x', 'aa', 'bb', 'cc']) queue.push(b(m))
    for (let i = 0; i < 3; i++) {
      socket.finish()
      await flush()
    }
    await queue.idle()
    expect(socket.sent.map(String)).to.deep.equal(['x', 'aabb', 'cc'])
  })

  it('refuses past maxQueued and after the socket closed, counting the drops', async () => {
    const socket = new FakeSocket()
    const queue = new SendQueue(socket, { maxQueued: 2 })
    expect(queue.push(b('in flight'))).to.equal(true)
    expect(queue.push(b('1'))).to.equal(true)
    expect(queue.push(b('2'))).to.equal(true)
    expect(queue.push(b('3'))).to.equal(false)
    socket.closed = true
    expect(queue.push(b('4'))).to.equal(false)
    expect(queue.counters.dropped).to.equal(2)
    socket.finish()
    await queue.idle()
  })

  it('keeps going after a send fails, reporting the error', async () => {
    const errors: unknown[] = []
    const socket: FrameSink = {
      closed: false,
      send: (m) => (String(m) === 'bad' ? Promise.reject(new Error('boom')) : Promise.resolve()),
    }
    const queue = new SendQueue(socket, { coalesce: false, onError: (e) => errors.push(e) })
    queue.push(b('bad'))
    queue.push(b('good'))
    await queue.idle()
    expect(errors).to.have.length(1)
    expect(queue.counters).to.include({ frames: 1, dropped: 1 })
  })
})
