/**
 * Hostile peers against a real RpcServer. Each attack runs while an honest client keeps calling
 * (probeWhile); the test asserts that every honest call succeeded within its deadline and that
 * resident memory grew less than a stated bound, and prints what it measured.
 */
import { expect } from 'chai'
import { Dealer } from 'zeromq'
import { RpcClient, RpcServer } from '../../lib/index.js'
import { encodeCbor } from '../../lib/codec/cbor.js'
import { encodeRequest } from '../../lib/codec/envelope.js'
import { Calc, calcHandlers } from '../helpers/calc.js'
import { collect, probeWhile, report, rssMb, type ProbeResult } from '../helpers/hostile.js'
import { sleep, until } from '../helpers/endpoints.js'
import { rawPeer, slowRequest } from '../integration/server-raw-peer.js'

const HONEST_TIMEOUT_MS = 2000

/** A server, an honest client, and the attack's cost: RSS growth and what the honest client saw. */
async function underAttack(what: string, rssBoundMb: number, attack: (endpoint: string, server: RpcServer) => Promise<Record<string, number>>): Promise<void> {
  const server = new RpcServer().implement(Calc, calcHandlers())
  const [endpoint] = await server.bind('tcp://127.0.0.1:*')
  const client = new RpcClient({ connect: endpoint!, timeoutMs: HONEST_TIMEOUT_MS })
  try {
    expect(await client.service(Calc).add({ a: 1, b: 1 })).to.equal(2)
    collect()
    const before = rssMb()
    let peak = before
    const sampler = setInterval(() => (peak = Math.max(peak, rssMb())), 20)
    const attacking = attack(endpoint!, server)
    let probe: ProbeResult
    let fields: Record<string, number>
    try {
      probe = await probeWhile(() => client.service(Calc).add({ a: 2, b: 3 }, { timeoutMs: HONEST_TIMEOUT_MS }), attacking)
      fields = await attacking
    } finally {
      clearInterval(sampler)
    }
    peak = Math.max(peak, rssMb())
    report(what, { rssBeforeMb: before, rssPeakGrowthMb: peak - before, rssBoundMb, ...fields, honestCalls: probe.calls, honestWorstMs: probe.worstMs, honestFailures: probe.failures.length })
    expect(probe.failures).to.deep.equal([])
    expect(probe.calls).to.be.above(0)
    expect(probe.worstMs).to.be.below(HONEST_TIMEOUT_MS)
    expect(peak - before).to.be.below(rssBoundMb)
  } finally {
    await client.close()
    await server.close({ timeoutMs: 500 })
  }
}

describe('hostile peers against a server', function () {
  this.timeout(20_000)

  it('a peer that never reads its replies loses them (counted), holds bounded memory, and others are served', async () => {
    await underAttack('server: peer that never reads 60 KB replies', 150, async (endpoint, server) => {
      const attacker = new Dealer({ linger: 0, receiveHighWaterMark: 1, sendHighWaterMark: 100 })
      attacker.connect(endpoint)
      try {
        const request = (id: number): Buffer => encodeRequest(id, 'calc', 'repeat', 10_000, null, encodeCbor({ s: 'x', n: 60_000 }))
        // 2,000 replies of 60 KB: 120 MB that the attacker never takes.
        for (let id = 1; id <= 2000; id++) {
          await attacker.send(request(id))
          if (id % 200 === 0) await sleep(10)
        }
        await until(() => server.stats.calls.completed >= 2000, 10_000, 'every call to be served')
        await until(() => server.stats.input[0]!.transport.send.slowPeerDrops > 0, 5000, 'drops to be counted')
        const send = server.stats.input[0]!.transport.send
        expect(send.queuedBytes).to.be.at.most(64 * 1024 * 1024)
        return { repliesDropped: send.slowPeerDrops, queuedMb: send.queuedBytes / 2 ** 20 }
      } finally {
        attacker.close()
      }
    })
  })

  it('a peer sending 1 MiB frames faster than the server reads costs bounded memory, and others are served', async () => {
    // What the server may hold for this peer: 64 MiB unread in libzmq, 8 MiB of parked replies, the
    // frame in hand. The rest of the growth is garbage not yet collected (a 1 MiB params string and a
    // 1 MiB reply per frame, about 1 GB/s of it), which the peak catches; 300 MB leaves room for that
    // and is still far from the 1 GB this attack reached before.
    await underAttack('server: peer sending 1 MiB frames without reading', 300, async (endpoint, server) => {
      const attacker = new Dealer({ linger: 0, receiveHighWaterMark: 1, sendHighWaterMark: 4 })
      attacker.connect(endpoint)
      try {
        // A few frames made once and sent in turn, so the attacker's own garbage does not count as the server's.
        const params = encodeCbor({ data: 'y'.repeat(1024 * 1024 - 64) })
        const frames = Array.from({ length: 32 }, (_, i) => encodeRequest(i + 1, 'calc', 'echo', 10_000, null, params))
        const frame = (n: number): Buffer => frames[n % frames.length]!
        const end = Date.now() + 1500
        let sent = 0
        while (Date.now() < end) {
          await attacker.send(frame(++sent))
          if (sent % 8 === 0) await sleep(1)
        }
        const input = server.stats.input[0]!
        return { framesSent: sent, receivedMb: input.transport.receivedBytes / 2 ** 20, repliesDropped: input.transport.send.slowPeerDrops }
      } finally {
        attacker.close()
      }
    })
  })

  it('one frame of 50,000 slow REQUESTs: every one answered (its share runs, the rest refused notStarted), others are served', async () => {
    await underAttack('server: one frame of 50k slow REQUESTs', 150, async (endpoint, server) => {
      const attacker = rawPeer(endpoint)
      try {
        await attacker.socket.send(Buffer.concat(Array.from({ length: 50_000 }, (_, i) => slowRequest(i + 1, 300))))
        await until(() => attacker.received.length >= 50_000, 10_000, 'every answer')
        await sleep(50)
        expect(attacker.received).to.have.length(50_000)
        return { answers: attacker.received.length, refusedPeerShare: server.stats.calls.rejectedPeerShare }
      } finally {
        attacker.stop()
      }
    })
  })

  it('a greedy peer with 1,280 slow calls gets its share and no more, and others are served', async () => {
    await underAttack('server: greedy peer, 1,280 slow calls', 150, async (endpoint, server) => {
      const attacker = rawPeer(endpoint)
      try {
        for (let round = 0; round < 3; round++) {
          for (let i = 1; i <= 1280; i++) await attacker.socket.send(slowRequest(round * 10_000 + i, 500))
          await sleep(600)
        }
        return { refusedPeerShare: server.stats.calls.rejectedPeerShare, completed: server.stats.calls.completed }
      } finally {
        attacker.stop()
      }
    })
  })

  it('valid but expensive CBOR (4 MiB frames of maps with ~400k keys, in metadata and in params) is refused fast, and others are served', async () => {
    // Before the per-frame work limits one such frame held the event loop 2.4 s; eight made honest calls miss 5 s deadlines.
    // The frames are built before the measurement starts: the attacker's own memory is not the server's.
    const bigMap = encodeCbor(Object.fromEntries(Array.from({ length: 400_000 }, (_, i) => [`k${i}`, ''])))
    const head = (id: number): Buffer => encodeCbor([1, 0, id, 'calc', 'add', 10_000]).subarray(1)
    const frames = Array.from({ length: 8 }, (_, i) =>
      i % 2 === 0
        ? // metadata: a map of 400k entries in the envelope itself
          Buffer.concat([Buffer.from([0x88]), head(i + 1), bigMap, encodeCbor(encodeCbor({ a: 1, b: 2 }))])
        : // params: a byte string holding the same map
          Buffer.concat([Buffer.from([0x88]), head(i + 1), Buffer.from([0xf6]), encodeCbor(bigMap)]),
    )
    await underAttack('server: 8 frames of 3.3 MiB maps with ~400k keys', 150, async (endpoint) => {
      const attacker = rawPeer(endpoint)
      try {
        const started = performance.now()
        for (const frame of frames) await attacker.socket.send(frame)
        await until(() => attacker.received.length >= frames.length, 10_000, 'an answer to each frame')
        const codes = attacker.received.map((env) => (env.kind === 'malformed' ? env.code : 'code' in env ? env.code : 'REPLY'))
        expect(codes).to.deep.equal(Array(frames.length).fill('INVALID_ARGUMENT'))
        return { frameMb: frames[0]!.length / 2 ** 20, allAnsweredMs: performance.now() - started }
      } finally {
        attacker.stop()
      }
    })
  })
})
