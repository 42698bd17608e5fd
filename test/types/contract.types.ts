/**
 * Compile-only: tsc checks this file as part of `npm test`. Each @ts-expect-error must be an error,
 * or the build fails, so these lines prove that wrong calls and handlers do not type-check.
 */
import { Type } from 'typebox'
import { RpcClient, RpcServer, defineService, type ServiceClient } from '../../lib/index.js'

const Calc = defineService('calc', {
  add: { params: Type.Object({ a: Type.Number(), b: Type.Number() }), result: Type.Number() },
  greet: { params: Type.Object({ name: Type.String(), loud: Type.Optional(Type.Boolean()) }), result: Type.String() },
})

export async function typeChecks(client: RpcClient, server: RpcServer): Promise<void> {
  const calc: ServiceClient<typeof Calc> = client.service(Calc)

  const sum: number = await calc.add({ a: 1, b: 2 })
  const hello: string = await calc.greet({ name: 'x' }, { timeoutMs: 100, metadata: { k: 'v' } })
  void sum
  void hello

  // @ts-expect-error a is a number
  await calc.add({ a: '1', b: 2 })
  // @ts-expect-error b is missing
  await calc.add({ a: 1 })
  // @ts-expect-error the result is a number, not a string
  const wrong: string = await calc.add({ a: 1, b: 2 })
  void wrong
  // @ts-expect-error no such method
  await calc.subtract({ a: 1, b: 2 })
  // @ts-expect-error metadata values are strings
  await calc.add({ a: 1, b: 2 }, { metadata: { k: 1 } })
  // @ts-expect-error timeoutMs is a number
  await calc.add({ a: 1, b: 2 }, { timeoutMs: '100' })

  server.implement(Calc, {
    add: ({ a, b }) => a + b,
    greet: async ({ name, loud }, ctx) => (loud === true ? name.toUpperCase() : name) + ctx.metadata['suffix'],
  })

  // @ts-expect-error greet is missing
  server.implement(Calc, { add: ({ a, b }) => a + b })

  server.implement(Calc, {
    // @ts-expect-error add must return a number
    add: ({ a, b }) => `${a + b}`,
    greet: ({ name }) => name,
  })

  server.implement(Calc, {
    add: ({ a, b }) => a + b,
    // @ts-expect-error params have no field "age"
    greet: ({ age }) => String(age),
  })
}
