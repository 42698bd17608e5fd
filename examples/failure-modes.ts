import { Type } from 'typebox'
import { defineService, EndpointError, RpcClient, RpcError, RpcServer } from 'zrpc'

const Echo = defineService('echo', {
  say: { params: Type.Object({ text: Type.String() }), result: Type.String() },
})

// A malformed endpoint is refused before any socket exists, with what is wrong.
try {
  new RpcClient({ connect: 'localhost:5555' })
} catch (err) {
  if (err instanceof EndpointError) console.log(err.message)
}

// Find a free port, then leave it: nothing listens there now.
const first = new RpcServer().implement(Echo, { say: ({ text }) => text })
const [endpoint] = await first.bind('tcp://127.0.0.1:*')
await first.close()

// A call to a server that is not running fails at once with UNAVAILABLE, naming the endpoint,
// instead of waiting out its deadline.
const client = new RpcClient({ connect: endpoint! })
try {
  await client.service(Echo).say({ text: 'hello' })
} catch (err) {
  if (err instanceof RpcError) console.log(err.code, err.message.includes(endpoint!.slice('tcp://'.length)))
}

// waitForReady: wait for the server to come up instead, within the deadline.
const later = client.service(Echo).say({ text: 'hello' }, { waitForReady: true, timeoutMs: 5000 })
const server = new RpcServer().implement(Echo, { say: ({ text }) => `${text} again` })
await server.bind(endpoint!)
console.log(await later)

await client.close()
await server.close()
