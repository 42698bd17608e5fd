/**
 * The broker's management service, `zrpc.broker`: served by every {@link Broker} through itself, so
 * it is called like any other service.
 *
 * @example
 * const admin = new RpcClient({ broker: 'tcp://127.0.0.1:5555' }).service(BrokerAdmin)
 * const { services, workers } = await admin.services({})
 * await admin.disconnectWorker({ identity: workers[0].identity })
 */
import { Type } from 'typebox'
import { defineService } from '../service/contract.js'

const Counters = Type.Record(Type.String(), Type.Integer())

/** Contract of the broker's management service. */
export const BrokerAdmin = defineService('zrpc.broker', {
  /** Services with their worker counts, workers with credit left, requests in flight, queue depths and counters; every worker; drop counters. */
  services: {
    params: Type.Object({}),
    result: Type.Object({
      services: Type.Array(
        Type.Object({
          name: Type.String(),
          workers: Type.Integer(),
          idle: Type.Integer(),
          /** Requests the workers hold now. */
          inFlight: Type.Integer(),
          queued: Type.Integer(),
          /** Bytes of the requests waiting. */
          queuedBytes: Type.Integer(),
          requests: Type.Integer(),
          replies: Type.Integer(),
          /** Age of the oldest waiting request, ms. */
          oldestQueuedMs: Type.Integer(),
          /** Requests whose deadline passed while they waited. */
          expired: Type.Integer(),
          /** ERROR answers to its callers by status code, from its workers and from the broker. */
          errors: Counters,
        }),
      ),
      /** Each worker, with the requests it may hold at once (1 for a plain MDP worker) and holds now. */
      workers: Type.Array(Type.Object({ identity: Type.String(), service: Type.String(), credit: Type.Integer(), holding: Type.Integer() })),
      /** Malformed or out-of-order messages dropped, by reason. */
      dropped: Counters,
      /** Requests the broker answered itself (no worker, queue full, worker lost, refused), by reason. */
      rejected: Counters,
      /** Requests dropped because their deadline passed while queued. */
      expired: Type.Integer(),
      /** Bytes of requests waiting in the broker, all services. */
      queuedBytes: Type.Integer(),
      /** A durable broker's record: calls on it (accepted, answer not yet delivered) and the journal's size in bytes. */
      durable: Type.Optional(Type.Object({ calls: Type.Integer(), fileBytes: Type.Integer() })),
      /** Deferred calls: tickets held and bytes of results kept. */
      tickets: Type.Object({ held: Type.Integer(), resultBytes: Type.Integer() }),
    }),
    idempotent: true,
  },
  /** Deferred calls (`zrpc.queue`): every ticket the broker holds, pending or finished and not yet collected. */
  tickets: {
    params: Type.Object({}),
    result: Type.Array(
      Type.Object({
        ticket: Type.String(),
        service: Type.String(),
        method: Type.String(),
        state: Type.String(),
        /** ms since the epoch */
        submittedAt: Type.Integer(),
        /** ms since the epoch, 0 while it runs or waits */
        finishedAt: Type.Integer(),
      }),
    ),
    idempotent: true,
  },
  /** Asks a worker to finish its request and disconnect; false if the broker does not know it. */
  disconnectWorker: {
    params: Type.Object({ identity: Type.String({ minLength: 1 }) }),
    result: Type.Boolean(),
  },
})
