/**
 * The broker part of `zrpc demo`: a broker and three workers serving the shop, one client calling
 * through the broker, and how the requests spread over the workers.
 */
import { Broker } from '../broker/broker.js'
import { RpcClient } from '../service/client.js'
import { RpcServer } from '../service/server.js'
import { Shop } from './shop.js'

const HEARTBEAT = { heartbeatMs: 250, liveness: 3 }
const WORKERS = 3
const CALLS = 300

/** Runs it, writing to `print`; resolves with how many calls each worker served, once all is closed. */
export async function runBrokerDemo(print: (line: string) => void): Promise<{ perWorker: number[] }> {
  const broker = new Broker(HEARTBEAT)
  const [endpoint] = await broker.bind('tcp://127.0.0.1:*')
  print(`broker: listening on ${endpoint}`)
  const perWorker = Array.from({ length: WORKERS }, () => 0)
  const servers = perWorker.map((_, n) =>
    new RpcServer().implement(Shop, {
      price: async ({ sku }) => {
        perWorker[n]!++
        // A little work, so requests overlap and the broker has to pick among idle workers.
        await new Promise((resolve) => setTimeout(resolve, 1))
        return { sku, cents: 100 + sku.length }
      },
      checkout: ({ items }) => ({ order: n, totalCents: items.length }),
      report: () => `worker ${n + 1}`,
    }),
  )
  const client = new RpcClient({ broker: endpoint!, timeoutMs: 5000 })
  try {
    for (const server of servers) await server.connectBroker(endpoint!, { ...HEARTBEAT, concurrency: 2 })
    while ((broker.stats().services['shop']?.workers ?? 0) < WORKERS) await new Promise((resolve) => setTimeout(resolve, 10))
    print(`broker: ${WORKERS} workers joined shop, 2 requests at a time each`)
    const shop = client.service(Shop)
    const started = performance.now()
    await Promise.all(Array.from({ length: CALLS }, (_, i) => shop.price({ sku: `sku-${i}` })))
    print(`broker: ${CALLS} calls through the broker in ${(performance.now() - started).toFixed(1)} ms`)
    print(`broker: requests per worker: ${perWorker.map((n, i) => `worker ${i + 1}: ${n}`).join(', ')}`)
  } finally {
    await client.close()
    await Promise.all(servers.map((s) => s.close()))
    await broker.close()
  }
  return { perWorker }
}
