/** The contract most integration tests use. */
import { Type } from 'typebox'
import { RpcError, defineService, type ServiceHandlers } from '../../lib/index.js'

export const Calc = defineService('calc', {
  add: { params: Type.Object({ a: Type.Number(), b: Type.Number() }), result: Type.Number() },
  echo: { params: Type.Object({ data: Type.String() }), result: Type.String() },
  slow: { params: Type.Object({ ms: Type.Number() }), result: Type.Null() },
  fail: { params: Type.Object({ how: Type.String() }), result: Type.Null() },
  lie: { params: Type.Object({}), result: Type.Number() },
  meta: { params: Type.Object({}), result: Type.Record(Type.String(), Type.String()) },
  repeat: { params: Type.Object({ s: Type.String(), n: Type.Integer({ minimum: 0 }) }), result: Type.String() },
})

/** Observations the handlers leave for the tests. */
export interface CalcProbe {
  aborted: unknown[]
  started: number
}

export function calcHandlers(probe: CalcProbe = { aborted: [], started: 0 }): ServiceHandlers<typeof Calc> {
  return {
    add: ({ a, b }) => a + b,
    echo: async ({ data }) => data,
    slow: ({ ms }, ctx) =>
      new Promise<null>((resolve, reject) => {
        probe.started++
        const timer = setTimeout(() => resolve(null), ms)
        ctx.signal.addEventListener('abort', () => {
          clearTimeout(timer)
          probe.aborted.push(ctx.signal.reason)
          reject(ctx.signal.reason as Error)
        })
      }),
    fail: ({ how }) => {
      if (how === 'rpc') throw new RpcError('NOT_FOUND', 'no such thing', { what: 'thing' })
      throw new Error('secret internal detail at /srv/app.js:42')
    },
    lie: () => 'not a number' as unknown as number,
    meta: (_params, ctx) => ({ ...ctx.metadata }),
    repeat: ({ s, n }) => s.repeat(n),
  }
}
