import { expect } from 'chai'
import { createServer, connect, type AddressInfo, type Socket } from 'node:net'
import { Dealer, Router } from 'zeromq'
import { checkEndpoint, EndpointError } from '../../lib/transport/endpoint.js'
import { RECEIVE_WATCHDOG_MS, TransportSocket, type ConnectionState } from '../../lib/transport/socket.js'
import { atDeadline, DeadlineWheel, MAX_TIMER_MS } from '../../lib/rpc/deadline-timer.js'
import { sleep, until } from '../helpers/endpoints.js'
import { deadEndpoint } from './client-raw-server.js'

describe('endpoint strings', () => {
  it('accepts what libzmq accepts for bind and connect', () => {
    for (const e of ['tcp://127.0.0.1:5555', 'tcp://localhost:1', 'tcp://[::1]:80', 'ipc:///tmp/x.sock', 'inproc://a']) expect(checkEndpoint(e, 'connect')).to.equal(e)
    for (const e of ['tcp://127.0.0.1:*', 'tcp://*:5555', 'ipc://*']) expect(checkEndpoint(e, 'bind')).to.equal(e)
  })

  it('names the endpoint and what is wrong, before any socket exists', () => {
    const cases: Array<[string, RegExp]> = [
      ['localhost:5555', /missing transport.*tcp:\/\/localhost:5555/],
      ['tcp://127.0.0.1', /host:port/],
      ['tcp://127.0.0.1:70000', /port "70000"/],
      ['tcp://127.0.0.1:*', /wildcard port/],
      ['udp://127.0.0.1:5', /unsupported transport udp/],
      ['tcp://bad host:5', /not a host name/],
      ['inproc://', /needs a name/],
    ]
    for (const [endpoint, why] of cases) {
      const err = (() => {
        try {
          checkEndpoint(endpoint, 'connect')
        } catch (e) {
          return e
        }
        return undefined
      })()
      expect(err, endpoint).to.be.instanceOf(EndpointError)
      expect((err as Error).message, endpoint).to.include(JSON.stringify(endpoint)).and.match(why)
    }
  })
})

describe('a deadline timer', () => {
  it('does not fire early for a deadline beyond setTimeout range (2^31 ms and more)', async () => {
    let fired = 0
    const far = atDeadline(Date.now() + MAX_TIMER_MS + 10_000, () => fired++)
    const farther = atDeadline(Date.now() + Number.MAX_SAFE_INTEGER / 4, () => fired++)
    await sleep(30)
    far.clear()
    farther.clear()
    expect(fired).to.equal(0)
  })

  it('fires at a near deadline', async () => {
    let fired = 0
    atDeadline(Date.now() + 5, () => fired++)
    await until(() => fired === 1, 1000, 'the timer')
  })
})

describe('TransportSocket', function () {
  this.timeout(10_000)

  it('reports failing at once when nothing listens, then ready when a server binds', async () => {
    const endpoint = await deadEndpoint()
    const states: ConnectionState[] = []
    const socket = new TransportSocket({ type: 'dealer', maxMessageSize: 1 << 20 }, { onMessage: () => {}, onState: (s) => states.push(s) })
    socket.connect(endpoint)
    await until(() => socket.state === 'failing', 2000, 'failing')
    expect(socket.stateDetail).to.include(endpoint.replace('tcp://', ''))
    const server = new Router()
    await server.bind(endpoint)
    await until(() => socket.state === 'ready', 3000, 'ready')
    await socket.close()
    server.close()
    expect(states).to.deep.equal(['failing', 'ready', 'closed'])
  })

  it('after a lost connection says connecting, not failing, until a reconnect attempt fails (libzmq\'s first retry is only its schedule)', async () => {
    const server = new Router({ linger: 0 })
    await server.bind('tcp://127.0.0.1:*')
    const port = Number(server.lastEndpoint!.split(':').at(-1))
    // A relay the test can cut while the server stays up.
    const sockets = new Set<Socket>()
    const relay = createServer((inbound) => {
      const outbound = connect(port, '127.0.0.1')
      for (const s of [inbound, outbound]) {
        sockets.add(s)
        s.on('error', () => undefined)
      }
      inbound.pipe(outbound).pipe(inbound)
    })
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve))
    const states: ConnectionState[] = []
    const socket = new TransportSocket({ type: 'dealer', maxMessageSize: 1 << 20 }, { onMessage: () => {}, onState: (s) => states.push(s) })
    try {
      socket.connect(`tcp://127.0.0.1:${(relay.address() as AddressInfo).port}`)
      await until(() => socket.state === 'ready', 2000, 'ready')
      for (const s of sockets) s.destroy()
      await until(() => states.length >= 3, 2000, 'lost and back')
      expect(states).to.deep.equal(['ready', 'connecting', 'ready'])
      // Now nothing listens: the reconnect attempt is refused, and that is failing.
      relay.close()
      server.close()
      for (const s of sockets) s.destroy()
      await until(() => socket.state === 'failing', 2000, 'failing')
      expect(states.slice(3)).to.deep.equal(['connecting', 'failing'])
    } finally {
      await socket.close()
      relay.close()
      server.close()
    }
  })

  it('recovers by itself after a message over maxMessageSize killed its connection', async () => {
    const server = new Router({ linger: 0 })
    await server.bind('tcp://127.0.0.1:*')
    const received: number[] = []
    const socket = new TransportSocket({ type: 'dealer', maxMessageSize: 64 * 1024, recoverAfterMs: 200 }, { onMessage: (frames) => void received.push(frames[0]!.length) })
    socket.connect(server.lastEndpoint!)
    socket.push(Buffer.from('hello'))
    const [client] = await server.receive()
    await server.send([client!, Buffer.alloc(100 * 1024)])
    await until(() => socket.counters.recoveries === 1, 3000, 'a fresh socket')
    await until(() => socket.state === 'ready', 3000, 'ready again')
    socket.push(Buffer.from('again'))
    const [again, body] = await server.receive()
    expect(body!.toString()).to.equal('again')
    await server.send([again!, Buffer.from('small')])
    await until(() => received.length === 1, 2000, 'the small reply')
    expect(received).to.deep.equal([5])
    await socket.close()
    server.close()
  })

  it('keeps receiving across idle spells longer than the receive watchdog, and counts no missed wake-up then', async () => {
    const server = new Router({ linger: 0 })
    await server.bind('tcp://127.0.0.1:*')
    const received: string[] = []
    const socket = new TransportSocket({ type: 'dealer', maxMessageSize: 1 << 20 }, { onMessage: (frames) => void received.push(frames[0]!.toString()) })
    socket.connect(server.lastEndpoint!)
    socket.push(Buffer.from('hello'))
    const [client] = await server.receive()
    // Each wait spans several watchdog timeouts, each one an EAGAIN the loop must shrug off.
    for (const word of ['one', 'two']) {
      await sleep(RECEIVE_WATCHDOG_MS * 2.5)
      await server.send([client!, Buffer.from(word)])
      await until(() => received.includes(word), 2000, word)
    }
    expect(received).to.deep.equal(['one', 'two'])
    expect(socket.counters).to.include({ received: 2, errors: 0, missedWakeups: 0 })
    await socket.close()
    server.close()
  })

  it('a ROUTER with notifyPeers reports peers that connect and leave', async () => {
    const events: string[] = []
    const server = new TransportSocket({ type: 'router', maxMessageSize: 1 << 20, notifyPeers: true }, { onMessage: () => {}, onPeer: (_id, e) => events.push(e) })
    const endpoint = await server.bind('tcp://127.0.0.1:*')
    const client = new Dealer({ linger: 0 })
    client.connect(endpoint)
    await until(() => events.length === 1, 2000, 'connected')
    client.close()
    await until(() => events.length === 2, 2000, 'disconnected')
    expect(events).to.deep.equal(['connected', 'disconnected'])
    expect(server.peerCount).to.equal(0)
    await server.close()
  })

  it('a ROUTER keeps the bytes held for a peer that never reads bounded, and keeps serving others', async () => {
    const maxParked = 1 << 20
    const server = new TransportSocket(
      { type: 'router', maxMessageSize: 1 << 20, peerBufferBytes: 1 << 20, maxParkedBytesPerPeer: maxParked },
      { onMessage: () => {} },
    )
    const endpoint = await server.bind('tcp://127.0.0.1:*')
    const deaf = new Dealer({ linger: 0, receiveHighWaterMark: 1 })
    const raw = server.raw as Router
    deaf.routingId = 'deaf'
    deaf.connect(endpoint)
    const reader = new Dealer({ linger: 0 })
    reader.routingId = 'reader'
    reader.connect(endpoint)
    await sleep(100)
    const chunk = Buffer.alloc(64 * 1024, 1)
    for (let i = 0; i < 2000; i++) {
      server.push(chunk, Buffer.from('deaf'))
      if (i % 100 === 0) await sleep(1)
    }
    server.push(Buffer.from('hi'), Buffer.from('reader'))
    const [body] = await reader.receive()
    expect(body!.toString()).to.equal('hi')
    await until(() => server.counters.send.slowPeerDrops > 0, 3000, 'drops for the deaf peer')
    console.log(`      deaf peer: ${server.counters.send.slowPeerDrops} of 2000 messages of 64 KiB dropped, ${server.counters.send.queuedBytes} bytes queued`)
    expect(server.counters.send.queuedBytes).to.be.at.most(maxParked)
    void raw
    deaf.close()
    reader.close()
    await server.close()
  })
})

describe('a deadline wheel', () => {
  it('fires each item once at or after its deadline, never early, and not at all once removed', async () => {
    const fired: Array<{ id: number; late: number }> = []
    const deadlines = new Map<number, number>()
    const wheel = new DeadlineWheel<number>((id) => fired.push({ id, late: Date.now() - deadlines.get(id)! }), 5)
    const now = Date.now()
    for (let id = 0; id < 200; id++) {
      deadlines.set(id, now + 10 + (id % 40))
      wheel.add(deadlines.get(id)!, id)
    }
    for (let id = 0; id < 200; id += 2) wheel.remove(deadlines.get(id)!, id)
    wheel.add(now + MAX_TIMER_MS + 1000, 999) // beyond setTimeout's range: must not fire now
    await until(() => fired.length === 100, 2000, 'the odd ids')
    await sleep(30)
    expect(fired.map((f) => f.id).sort((a, b) => a - b)).to.deep.equal(Array.from({ length: 100 }, (_, i) => 2 * i + 1))
    expect(Math.min(...fired.map((f) => f.late))).to.be.at.least(0)
    wheel.clear()
  })
})
