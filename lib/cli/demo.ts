/**
 * `zrpc demo`: a server and three clients on loopback, typed calls, a deadline, a cancel and a
 * validation error; then price updates on a typed topic with a late joiner served from the
 * last-value cache; then a broker and three workers and how requests spread over them; printed as
 * they happen. Needs no configuration and exits by itself.
 */
import { Type } from 'typebox'
import { RpcClient } from '../service/client.js'
import { RpcServer } from '../service/server.js'
import { RpcError } from '../errors.js'
import { Shop } from './shop.js'
import { runBrokerDemo } from './demo-broker.js'
import { defineTopic } from '../pubsub/topic.js'
import { Publisher } from '../pubsub/publisher.js'
import { Subscriber } from '../pubsub/subscriber.js'
import { waitForFlow } from '../pubsub/flow.js'

export { Shop }

export const PriceChanges = defineTopic('shop.prices', Type.Object({ sku: Type.String(), cents: Type.Integer() }))

const priceOf = (sku: string): number => 100 + ([...sku].reduce((n, c) => n + c.charCodeAt(0), 0) % 900)

/** Runs the demo, writing to `print`; resolves with a summary once everything is closed. */
export async function runDemo(print: (line: string) => void = (line) => process.stdout.write(`${line}\n`)): Promise<{ calls: number; errors: Record<string, number>; perWorker: number[]; updates: number }> {
  let nextOrder = 1000
  const server = new RpcServer().implement(Shop, {
    price: ({ sku }) => ({ sku, cents: priceOf(sku) }),
    checkout: ({ items }) => ({ order: nextOrder++, totalCents: items.reduce((sum, { sku, qty }) => sum + qty * priceOf(sku), 0) }),
    report: ({ ms }, ctx) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => resolve(`report after ${ms} ms`), ms)
        ctx.signal.addEventListener('abort', () => {
          clearTimeout(timer)
          print(`  server: report aborted (${(ctx.signal.reason as RpcError).code})`)
          reject(ctx.signal.reason as Error)
        })
      }),
  })
  const [endpoint] = await server.bind('tcp://127.0.0.1:*')
  print(`server: shop service on ${endpoint}`)

  const clients = [1, 2, 3].map(() => new RpcClient({ connect: endpoint!, timeoutMs: 2000 }))
  const errors: Record<string, number> = {}
  let calls = 0
  let updates = 0
  const record = (err: unknown): void => {
    const code = err instanceof RpcError ? err.code : 'UNKNOWN'
    errors[code] = (errors[code] ?? 0) + 1
  }
  try {
    const started = performance.now()
    await Promise.all(
      clients.map(async (client, n) => {
        const shop = client.service(Shop)
        const skus = Array.from({ length: 200 }, (_, i) => `sku-${n}-${i}`)
        const prices = await Promise.all(skus.map((sku) => shop.price({ sku })))
        const order = await shop.checkout({ items: prices.slice(0, 3).map(({ sku }) => ({ sku, qty: 2 })) })
        calls += prices.length + 1
        print(`client ${n + 1}: priced ${prices.length} items, order ${order.order} totals ${order.totalCents} cents`)
      }),
    )
    print(`typed calls: ${calls} in ${(performance.now() - started).toFixed(1)} ms`)

    const shop = clients[0]!.service(Shop)
    try {
      await shop.report({ ms: 5000 }, { timeoutMs: 150 })
    } catch (err) {
      record(err)
      print(`deadline: report({ ms: 5000 }) with timeoutMs 150 -> ${(err as RpcError).code}`)
    }
    const controller = new AbortController()
    setTimeout(() => controller.abort(), 100)
    try {
      await shop.report({ ms: 5000 }, { signal: controller.signal })
    } catch (err) {
      record(err)
      print(`cancel: report aborted by the caller after 100 ms -> ${(err as RpcError).code}`)
    }
    try {
      await shop.checkout({ items: [] })
    } catch (err) {
      record(err)
      print(`validation: checkout({ items: [] }) -> ${(err as RpcError).code}: ${(err as RpcError).message}`)
    }
    updates = await publishPrices(print)
  } finally {
    await Promise.all(clients.map((c) => c.close()))
    await server.close()
  }
  const { perWorker } = await runBrokerDemo(print)
  print('closed: all sockets shut, exiting')
  return { calls, errors, perWorker, updates }
}

/** Price changes on a typed topic: a live subscriber, then a late joiner fed by the last-value cache. */
async function publishPrices(print: (line: string) => void): Promise<number> {
  const publisher = new Publisher({ lastValueCache: true })
  const subscribers: Subscriber[] = []
  try {
    const [endpoint] = await publisher.bind('tcp://127.0.0.1:*')
    const live = new Subscriber({ connect: endpoint! })
    subscribers.push(live)
    const changes = live.subscribe(PriceChanges)
    await waitForFlow(publisher, live)
    const skus = ['sku-0-0', 'sku-1-0', 'sku-0-0', 'sku-2-0', 'sku-0-0']
    for (const [i, sku] of skus.entries()) await publisher.publish(PriceChanges, { sku, cents: priceOf(sku) + i }, { key: sku })
    let updates = 0
    for await (const { key, seq, data } of changes) {
      if (++updates === skus.length) {
        print(`topic: ${updates} typed updates on ${PriceChanges.name}, last ${key} #${seq} at ${data.cents} cents, ${live.stats.gaps} gaps`)
        break
      }
    }
    const late = new Subscriber({ connect: endpoint! })
    subscribers.push(late)
    for await (const { key, data } of late.subscribe(PriceChanges, { key: 'sku-0-0' })) {
      print(`topic: a late joiner for ${key} got ${data.cents} cents from the last-value cache`)
      break
    }
    return updates
  } finally {
    await Promise.all(subscribers.map((s) => s.close()))
    await publisher.close()
  }
}
