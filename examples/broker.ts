import { Type } from 'typebox'
import { Broker, BrokerAdmin, RpcClient, RpcServer, defineService } from 'zrpc'

const Calc = defineService('calc', {
  add: { params: Type.Object({ a: Type.Number(), b: Type.Number() }), result: Type.Number(), idempotent: true },
})

const broker = new Broker({ heartbeatMs: 2500, liveness: 3, maxQueuePerService: 10_000, requestExpiryMs: 1000 })
const [ep] = await broker.bind('tcp://127.0.0.1:*') // or run one: npx zrpc broker --bind tcp://127.0.0.1:5555

const server = new RpcServer().implement(Calc, { add: ({ a, b }) => a + b })
await server.connectBroker(ep!, { concurrency: 8 }) // each service takes up to 8 calls at once

const client = new RpcClient({ broker: ep! })
console.log('2 + 3 =', await client.service(Calc).add({ a: 2, b: 3 }))

const admin = client.service(BrokerAdmin) // the broker's own service: services, workers, counters
const { services } = await admin.services({})
console.log('calc is served:', (services.find((s) => s.name === 'calc')?.workers ?? 0) > 0)

await client.close()
await server.close()
await broker.close()
