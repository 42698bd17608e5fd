import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Type } from 'typebox'
import { Broker, defineService, RpcClient, RpcServer } from 'zrpc'

const Reports = defineService('reports', {
  build: { params: Type.Object({ month: Type.Integer() }), result: Type.String(), idempotent: true },
})

const dir = mkdtempSync(join(tmpdir(), 'zrpc-queue-'))
const endpoint = 'ipc://' + join(dir, 'broker.sock')

// A durable broker: every accepted call is on disk before it is queued.
let broker = new Broker({ durable: { dir } })
await broker.bind(endpoint)

// Submit with no worker running yet: the ticket comes once the call is on disk.
const producer = new RpcClient({ broker: endpoint })
const ticket = await producer.queue(Reports).build.submit({ month: 11 })
await producer.close()
console.log('ticket issued:', ticket.length, 'hex digits')

// The broker stops; a new one on the same directory goes on where it stopped.
await broker.close()
broker = new Broker({ durable: { dir } })
await broker.bind(endpoint)

// A worker comes up later, and another client collects the result by ticket.
const worker = new RpcServer().implement(Reports, { build: ({ month }) => `report for month ${month}` })
await worker.connectBroker(endpoint)
const consumer = new RpcClient({ broker: endpoint })
console.log(await consumer.queue(Reports).build.collect(ticket, { waitMs: 5000 }))

await consumer.close()
await worker.close()
await broker.close()
rmSync(dir, { recursive: true, force: true })
