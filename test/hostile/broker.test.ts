/**
 * Hostile peers against a real broker, with an honest client and server calling through it the
 * whole time. Each attack reports what the honest client saw and what RSS did.
 */
import { expect } from 'chai'
import { Dealer } from 'zeromq'
import { Broker, BrokerAdmin, RpcClient, RpcServer } from '../../lib/index.js'
import { encodeCbor } from '../../lib/codec/cbor.js'
import { Kind, encodeReply, encodeRequest, parseFrame } from '../../lib/codec/envelope.js'
import { Calc, calcHandlers } from '../helpers/calc.js'
import { TRANSPORTS, bindAddress, sleep, until } from '../helpers/endpoints.js'
import { collect, probeWhile, report, rssMb } from '../helpers/hostile.js'

const HEARTBEAT = { heartbeatMs: 100, liveness: 3 }
const EMPTY = Buffer.alloc(0)
const MDPC01 = Buffer.from('MDPC01')
const MDPW01 = Buffer.from('MDPW01')

interface Rig {
  broker: Broker
  endpoint: string
  server: RpcServer
  client: RpcClient
  attacker: Dealer
  close(): Promise<void>
}

async function rig(transport: (typeof TRANSPORTS)[number]): Promise<Rig> {
  const broker = new Broker({ ...HEARTBEAT, maxQueuedBytesPerService: 16 * 1024 * 1024, maxQueuedBytes: 32 * 1024 * 1024 })
  const [endpoint] = (await broker.bind(bindAddress(transport))) as [string]
  const server = new RpcServer().implement(Calc, calcHandlers())
  await server.connectBroker(endpoint, { ...HEARTBEAT, concurrency: 2 })
  await until(() => broker.stats().workerList.some((w) => w.service === 'calc' && w.credit === 2), 5000, 'honest workers')
  const client = new RpcClient({ broker: endpoint, timeoutMs: 2000 })
  const attacker = new Dealer({ linger: 0, sendHighWaterMark: 100_000 })
  attacker.connect(endpoint)
  return {
    broker,
    endpoint,
    server,
    client,
    attacker,
    async close() {
      attacker.close()
      await client.close()
      await server.close({ timeoutMs: 100 })
      await broker.close()
    },
  }
}

/** Runs `attack` while the honest client calls calc.add; asserts it was served and RSS stayed within `maxGrowthMb`. */
async function underAttack(r: Rig, what: string, maxGrowthMb: number, attack: () => Promise<void>): Promise<void> {
  collect()
  const before = rssMb()
  const attacking = attack()
  const probe = await probeWhile(() => r.client.service(Calc).add({ a: 1, b: 2 }, { timeoutMs: 2000 }), attacking.then(() => sleep(100)))
  await attacking
  collect()
  const growth = rssMb() - before
  report(what, { calls: probe.calls, failures: probe.failures.length, worstMs: probe.worstMs, rssBeforeMb: before, rssGrowthMb: growth, queuedBytes: r.broker.stats().queuedBytes })
  expect(probe.failures).to.deep.equal([])
  expect(probe.calls).to.be.above(0)
  expect(growth).to.be.below(maxGrowthMb)
}

const request = (service: string, id: number, timeoutMs: number, params: Uint8Array = encodeCbor({ a: 1, b: 1 })): Buffer[] => [
  EMPTY,
  MDPC01,
  Buffer.from(service),
  encodeRequest(id, service, 'add', timeoutMs, null, params),
]

for (const transport of TRANSPORTS) {
  describe(`hostile peers against the broker over ${transport}`, function () {
    this.timeout(20_000)
    let r: Rig
    beforeEach(async () => (r = await rig(transport)))
    afterEach(() => r.close())

    it('thousands of invented service names: bounded by maxUnknownServices, answered UNAVAILABLE', async () => {
      await underAttack(r, `${transport} 5000 invented names`, 80, async () => {
        for (let i = 0; i < 5000; i++) await r.attacker.send(request(`invented-${i}`, i + 1, 60_000))
        const read = (): number => {
          const { rejected, unknownServices } = r.broker.stats()
          return rejected['unknown-services']! + rejected['expired']! + unknownServices
        }
        await until(() => read() >= 5000, 5000, 'all names read')
      })
      expect(r.broker.stats().unknownServices).to.be.at.most(1000)
      expect(r.broker.stats().rejected['unknown-services']).to.be.above(0)
    })

    it('10 KB bodies that are not zrpc, to distinct names: plain MDP requests, held for at most maxUnknownServices names, the rest refused', async () => {
      const junk = Buffer.alloc(10_000, 0xff)
      // Not zrpc, so each is a plain 7/MDP request waiting for a plain worker of its name.
      const settled = (): number => {
        const { rejected, services } = r.broker.stats()
        const queued = Object.values(services).reduce((n, s) => n + s.queued, 0)
        return queued + (rejected['opaque-unknown-services'] ?? 0) + (rejected['opaque-expired'] ?? 0)
      }
      await underAttack(r, `${transport} 3000 plain bodies to distinct names`, 80, async () => {
        for (let i = 0; i < 3000; i++) await r.attacker.send([EMPTY, MDPC01, Buffer.from(`junk-${i}`), junk])
        await until(() => settled() === 3000, 5000, 'all junk read')
      })
      expect(r.broker.stats().queuedBytes).to.be.at.most(1000 * 10_000)
      expect(r.broker.stats().unknownServices).to.be.at.most(1000)
    })

    it('1 MiB requests flooding a service with no worker: bounded in bytes, RESOURCE_EXHAUSTED past it', async () => {
      // One frame sent 200 times: the attacker's own memory stays out of the measurement.
      const flood = request('nobody', 1, 60_000, encodeCbor({ a: 'x'.repeat(1024 * 1024) }))
      // Each request ends one of three ways: refused past the byte bound, expired (no worker within
      // heartbeat x liveness, 300 ms here: a slow machine gets there before the flood is read), or still queued.
      const settled = (): number => {
        const { rejected, services } = r.broker.stats()
        return (rejected['queue-bytes'] ?? 0) + (rejected['expired'] ?? 0) + (services['nobody']?.queued ?? 0)
      }
      const before = settled()
      await underAttack(r, `${transport} 200 x 1 MiB to a workerless service`, 150, async () => {
        for (let i = 0; i < 200; i++) await r.attacker.send(flood)
        await until(() => settled() - before === 200, 10_000, 'flood read')
      })
      const { queuedBytes, rejected } = r.broker.stats()
      expect(queuedBytes).to.be.at.most(16 * 1024 * 1024)
      // Refused past the bound (how many depends on how many expired first, on a loaded machine).
      expect(rejected['queue-bytes']).to.be.above(0)
    })

    it('a fake READY as zrpc.broker: refused; admin answers come from the broker', async () => {
      await underAttack(r, `${transport} fake zrpc.broker workers`, 40, async () => {
        for (let i = 0; i < 50; i++) {
          const fake = new Dealer({ linger: 0 })
          fake.connect(r.endpoint)
          await fake.send([EMPTY, MDPW01, Buffer.of(0x01), Buffer.from('zrpc.broker')])
          fake.close()
        }
      })
      const overview = await r.client.service(BrokerAdmin).services({})
      expect(overview.workers.every((w) => w.service === 'calc')).to.equal(true)
    })

    it('a worker answering with replies for other clients and other calls: dropped or refused, never delivered', async () => {
      // The attacker registers as a second calc worker and answers every request with forged replies.
      await r.attacker.send([EMPTY, MDPW01, Buffer.of(0x01), Buffer.from('calc')])
      await until(() => r.broker.stats().services['calc']?.workers === 2, 2000, 'attacker registered')
      let forged = 0
      const forging = (async () => {
        for (;;) {
          const frames = await r.attacker.receive().catch(() => undefined)
          if (frames === undefined) return
          if (frames[2]?.[0] !== 0x02) continue
          const client = frames[3]!
          const [env] = parseFrame(frames[5]!)
          const id = env?.id ?? 0
          forged++
          // A reply for another client, then a sequence of replies for nearby ids, then a wrong id.
          await r.attacker.send([EMPTY, MDPW01, Buffer.of(0x03), Buffer.from('someone-else'), EMPTY, encodeReply(id, encodeCbor(666))])
          await r.attacker.send([EMPTY, MDPW01, Buffer.of(0x03), client, EMPTY, Buffer.concat([encodeReply(id + 1, encodeCbor(666)), encodeReply(id, encodeCbor(666))])])
        }
      })()
      const results: unknown[] = []
      const calls = Array.from({ length: 40 }, () => r.client.service(Calc).add({ a: 1, b: 2 }, { timeoutMs: 2000 }).then((v) => results.push(v), (e: { code?: string }) => results.push(e.code)))
      await Promise.all(calls)
      r.attacker.close()
      await forging
      report(`${transport} forged replies`, { forged, answered: results.length, wrongValues: results.filter((v) => v === 666).length })
      expect(results).to.not.include(666)
      expect(forged).to.be.above(0)
      // Calls the attacker held end INTERNAL (bad reply); the rest are answered by the honest workers.
      expect(results.filter((v) => v === 3).length).to.be.above(0)
      expect(r.broker.stats().rejected['bad-reply']).to.equal(forged)
    })

    it('huge budgets (2^31 to 2^53-1 ms): served, workers not wedged, server closes promptly', async () => {
      await underAttack(r, `${transport} huge budgets`, 40, async () => {
        for (let i = 0; i < 200; i++) await r.attacker.send(request('calc', i + 1, i % 2 === 0 ? Number.MAX_SAFE_INTEGER : 2 ** 31 + i))
        let answered = 0
        while (answered < 200) {
          const [, , , frame] = await r.attacker.receive()
          expect(parseFrame(frame!)[0]).to.include({ kind: Kind.Reply })
          answered++
        }
      })
      const began = Date.now()
      await r.server.close({ timeoutMs: 500 })
      expect(Date.now() - began).to.be.below(2000)
    })
  })
}
