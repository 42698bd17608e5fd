/**
 * The contract the broker, balance, stream and queue benches call: echo a string, or stream `count` strings
 * of `size` 'x' each (a server stream; the worker yields one pre-built string over and over).
 * `echoIdempotent` is the same echo marked idempotent (its calls carry a key): a durable broker records it
 * once, where a call that must not run twice is also recorded as sent before it goes to a worker.
 */
import { Type } from 'typebox'
import { defineService } from '../../lib/index.js'

export const Echo = defineService('echo', {
  echo: { params: Type.Object({ data: Type.String() }), result: Type.String() },
  echoIdempotent: { params: Type.Object({ data: Type.String() }), result: Type.String(), idempotent: true },
  items: { params: Type.Object({ count: Type.Integer({ minimum: 0 }), size: Type.Integer({ minimum: 0, maximum: 1 << 20 }) }), stream: Type.String() },
})
