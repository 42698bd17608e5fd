/**
 * The contract the broker, balance and stream benches call: echo a string, or stream `count` strings
 * of `size` 'x' each (a server stream; the worker yields one pre-built string over and over).
 */
import { Type } from 'typebox'
import { defineService } from '../../lib/index.js'

export const Echo = defineService('echo', {
  echo: { params: Type.Object({ data: Type.String() }), result: Type.String() },
  items: { params: Type.Object({ count: Type.Integer({ minimum: 0 }), size: Type.Integer({ minimum: 0, maximum: 1 << 20 }) }), stream: Type.String() },
})
