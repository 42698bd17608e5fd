import { Type } from 'typebox'
import { defineService, RpcServer, RpcClient, RpcError } from 'zrpc'

export const Calc = defineService('calc', {
  add: { params: Type.Object({ a: Type.Number(), b: Type.Number() }), result: Type.Number() },
  slow: { params: Type.Object({ ms: Type.Number() }), result: Type.Null() },
})

const server = new RpcServer()
server.implement(Calc, {
  add: async ({ a, b }) => a + b,
  slow: ({ ms }, ctx) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => resolve(null), ms)
      ctx.signal.addEventListener('abort', () => (clearTimeout(timer), reject(ctx.signal.reason)))
    }),
})
const endpoints: string[] = await server.bind('tcp://127.0.0.1:*')

const client = new RpcClient({ connect: endpoints[0]! })
const calc = client.service(Calc)
const sum: number = await calc.add({ a: 1, b: 2 })
console.log('1 + 2 =', sum)

try {
  await calc.slow({ ms: 5000 }, { timeoutMs: 100 })
} catch (err) {
  if (err instanceof RpcError) console.log('slow call failed with', err.code)
}

await client.close()
await server.close()
