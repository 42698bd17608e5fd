/**
 * Deferred calls as a service the broker serves in its own process, `zrpc.queue`: submit a call and
 * get a ticket, then collect its outcome by ticket, from any client, whenever. Typed clients use it
 * through `client.queue(Service)` (lib/service/client-queue.ts); any zrpc client can call it.
 *
 * ```
 *   submit({ service, method, params, timeoutMs? }) ─► { ticket }     once the broker has accepted it
 *   status({ ticket })                              ─► { state, result? | error? }
 *   collect({ ticket, waitMs? })                    ─► the same, waiting up to waitMs for the end; a
 *                                                      finished ticket is forgotten once collected
 *   cancel({ ticket })                              ─► true if it was still queued or running
 * ```
 */
import { decodeCbor, encodeCbor } from '../codec/cbor.js'
import { RpcError } from '../errors.js'
import { Dispatcher, type RawHandler } from '../rpc/dispatcher.js'
import { BrokerQueue, type SubmitParams, type TicketView } from '../service/queue-contract.js'
import { validatorsFor } from '../service/validator.js'

export { BrokerQueue, type SubmitParams, type TicketView } from '../service/queue-contract.js'

/** What the queue service does in its broker. */
export interface QueueTarget {
  submit(params: SubmitParams): Promise<string>
  status(ticket: string): TicketView
  collect(ticket: string, waitMs: number, signal: AbortSignal): Promise<TicketView>
  cancel(ticket: string): boolean
}

/** Collects may wait: many at once, each a cheap promise. */
const QUEUE_CONCURRENCY = 1024
const QUEUE_WAITING = 1024

/**
 * A Dispatcher serving `zrpc.queue` for one broker.
 *
 * @example
 * const queue = queueDispatcher(target)
 * queue.handle(request, peer, (frame) => sendToClient(frame))
 */
export function queueDispatcher(target: QueueTarget): Dispatcher {
  const validators = validatorsFor(BrokerQueue)
  const read = (method: string, bytes: Uint8Array): Record<string, unknown> => {
    const params = decodeCbor(bytes)
    const invalid = validators.get(method)!.params(params)
    if (invalid !== undefined) throw invalid
    return params as Record<string, unknown>
  }
  const handlers = new Map<string, RawHandler>([
    [
      'submit',
      async (bytes) => {
        const params = read('submit', bytes) as SubmitParams
        if (!(params.params instanceof Uint8Array)) throw new RpcError('INVALID_ARGUMENT', 'submit: params must be the call params as CBOR bytes')
        return encodeCbor({ ticket: await target.submit(params) })
      },
    ],
    ['status', (bytes) => encodeCbor(target.status(read('status', bytes)['ticket'] as string))],
    [
      'collect',
      async (bytes, ctx) => {
        const params = read('collect', bytes)
        // Never past the caller's own deadline: it would not see the answer.
        const waitMs = Math.max(0, Math.min((params['waitMs'] as number | undefined) ?? 0, ctx.deadline - Date.now() - 50))
        return encodeCbor(await target.collect(params['ticket'] as string, waitMs, ctx.signal))
      },
    ],
    ['cancel', (bytes) => encodeCbor(target.cancel(read('cancel', bytes)['ticket'] as string))],
  ])
  return new Dispatcher((service, method) => (service === BrokerQueue.name ? handlers.get(method) : undefined), {
    maxConcurrent: QUEUE_CONCURRENCY,
    maxQueued: QUEUE_WAITING,
    // Nothing to keep for retries: submit is not idempotent (never retried once it may have run), the rest are cheap.
    callRecord: false,
  })
}
