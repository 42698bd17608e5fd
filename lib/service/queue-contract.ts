/**
 * The contract of the broker's deferred-call service, `zrpc.queue` (served by broker/queue-service.ts,
 * called through `client.queue(Service)`, lib/service/client-queue.ts). It lives at this layer
 * because both sides need it.
 */
import { Type, type Static } from 'typebox'
import { defineService } from './contract.js'

/** CBOR bytes (a byte string on the wire); checked by the handlers, since a schema cannot say "bytes". */
const Bytes = Type.Unsafe<Uint8Array>({ description: 'CBOR bytes' })

const TicketView = Type.Object({
  state: Type.Union([Type.Literal('queued'), Type.Literal('running'), Type.Literal('done'), Type.Literal('failed'), Type.Literal('cancelled'), Type.Literal('expired'), Type.Literal('unknown')]),
  /** The result's CBOR bytes, when done. */
  result: Type.Optional(Bytes),
  /** Why it failed, was cancelled or expired. */
  error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String(), details: Type.Unknown() })),
})

/** What status and collect say of a ticket. */
export type TicketView = Static<typeof TicketView>

/** Contract of the broker's deferred-call service. */
export const BrokerQueue = defineService('zrpc.queue', {
  submit: {
    params: Type.Object({
      service: Type.String({ minLength: 1 }),
      method: Type.String({ minLength: 1 }),
      params: Bytes,
      /** The call's budget, counted from submission (default 1 hour). */
      timeoutMs: Type.Optional(Type.Integer({ minimum: 1 })),
      metadata: Type.Optional(Type.Record(Type.String(), Type.String())),
      /** The method may run twice (it then carries a call key, so a worker's record can answer a second attempt). */
      idempotent: Type.Optional(Type.Boolean()),
    }),
    result: Type.Object({ ticket: Type.String() }),
  },
  status: { params: Type.Object({ ticket: Type.String() }), result: TicketView, idempotent: true },
  collect: { params: Type.Object({ ticket: Type.String(), waitMs: Type.Optional(Type.Integer({ minimum: 0 })) }), result: TicketView },
  cancel: { params: Type.Object({ ticket: Type.String() }), result: Type.Boolean() },
})

export type SubmitParams = Static<(typeof BrokerQueue)['methods']['submit']['params']>

