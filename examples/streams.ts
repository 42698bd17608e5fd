import { Type } from 'typebox'
import { defineService, RpcServer, RpcClient } from 'zrpc'

const Ticks = defineService('ticks', {
  // `stream` instead of `result`: the method yields many items of this schema.
  count: { params: Type.Object({ to: Type.Integer() }), stream: Type.Object({ n: Type.Integer() }) },
})

let closed = 0
const server = new RpcServer().implement(Ticks, {
  async *count({ to }) {
    try {
      for (let n = 1; n <= to; n++) yield { n } // waits here while the reader has not granted more
    } finally {
      closed++ // runs when the stream ends, however it ends
    }
  },
})
const [endpoint] = await server.bind('tcp://127.0.0.1:*')
const client = new RpcClient({ connect: endpoint! })
const ticks = client.service(Ticks)

let sum = 0
for await (const { n } of ticks.count({ to: 100 }, { window: 32 })) sum += n // at most 32 items ahead
console.log('sum of 1..100 =', sum)

for await (const { n } of ticks.count({ to: 1_000_000 })) {
  if (n === 3) break // leaving the loop cancels the stream on the server
}
await new Promise((resolve) => setTimeout(resolve, 50))
console.log('streams closed on the server:', closed)

await client.close()
await server.close()
