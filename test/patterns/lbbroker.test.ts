import { expect } from 'chai'
import { Dealer } from 'zeromq'
import { LoadBalancingBroker, LoadBalancingClient, LoadBalancingWorker, main } from '../../patterns/lbbroker.js'

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

async function until(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await sleep(5)
  }
}

describe('patterns/lbbroker', function () {
  this.timeout(5000)

  describe('main() with small numbers', () => {
    for (const transport of ['tcp', 'inproc'] as const) {
      it(`answers every request and every worker takes a share (${transport})`, async () => {
        const summary = await main({ clients: 4, workers: 2, requestsPerClient: 3, transport })
        expect(summary.requests).to.equal(12)
        expect(summary.replies).to.equal(12)
        const counts = Object.values(summary.perWorker)
        expect(counts).to.have.length(2)
        expect(counts.reduce((a, b) => a + b, 0)).to.equal(12)
        for (const n of counts) expect(n).to.be.greaterThan(0)
      })
    }
  })

  describe('a broker with three idle workers', () => {
    let broker: LoadBalancingBroker
    let workers: LoadBalancingWorker[]
    let runs: Promise<void>[]
    let frontend: string

    beforeEach(async () => {
      broker = new LoadBalancingBroker()
      const ep = await broker.bind('tcp://127.0.0.1:*', 'tcp://127.0.0.1:*')
      frontend = ep.frontend
      workers = []
      runs = []
      for (const name of ['w1', 'w2', 'w3']) {
        const worker = new LoadBalancingWorker(() => name, { routingId: name })
        workers.push(worker)
        runs.push(worker.run(ep.backend))
        // Wait for each READY so the LRU order is known.
        await until(() => broker.idleWorkers === workers.length)
      }
    })

    afterEach(async () => {
      await broker.close()
      for (const w of workers) w.close()
      await Promise.all(runs)
    })

    it('hands sequential requests to the least recently used worker (round robin)', async () => {
      const client = new LoadBalancingClient(frontend)
      const seen: string[] = []
      for (let i = 0; i < 6; i++) seen.push(String((await client.request('HELLO'))[0]))
      client.close()
      expect(seen).to.deep.equal(['w1', 'w2', 'w3', 'w1', 'w2', 'w3'])
    })

    it('serves a DEALER client that sends the empty delimiter itself', async () => {
      const dealer = new Dealer({ linger: 0 })
      dealer.connect(frontend)
      await dealer.send(['', 'HELLO'])
      const [empty, reply] = await dealer.receive()
      dealer.close()
      expect(empty?.length).to.equal(0)
      expect(String(reply)).to.equal('w1')
    })
  })

  describe('a broker with no idle worker', () => {
    it('leaves the request unread until a worker is ready, then serves it', async () => {
      const broker = new LoadBalancingBroker()
      const ep = await broker.bind('tcp://127.0.0.1:*', 'tcp://127.0.0.1:*')
      const client = new LoadBalancingClient(ep.frontend)
      let answered = false
      const pending = client.request('HELLO').then((frames) => {
        answered = true
        return frames
      })
      await sleep(100)
      expect(answered).to.equal(false)
      expect(broker.forwarded).to.equal(0)
      const worker = new LoadBalancingWorker(() => 'late', { routingId: 'late' })
      const run = worker.run(ep.backend)
      const [reply] = await pending
      expect(String(reply)).to.equal('late')
      expect(broker.forwarded).to.equal(1)
      client.close()
      await broker.close()
      worker.close()
      await run
    })
  })
})
