/**
 * The broker's management service (`zrpc.broker`, contract in admin.ts) served inside the broker
 * process: its requests go to an in-process Dispatcher, never to a worker socket, so no peer can
 * register as `zrpc.broker` and answer for the broker.
 */
import { decodeCbor, encodeCbor } from '../codec/cbor.js'
import { RpcError } from '../errors.js'
import { Dispatcher, type RawHandler } from '../rpc/dispatcher.js'
import { BrokerAdmin } from './admin.js'

/** What the admin service reads from and does to its broker. */
export interface AdminTarget {
  /** The result of `services`, shaped as the contract says. */
  overview(): unknown
  disconnectWorker(identity: string): boolean
  /** Deferred calls' tickets, pending and finished. */
  tickets(): unknown
}

/** Admin calls running at once, and waiting; they are cheap and answered synchronously. */
const ADMIN_CONCURRENCY = 16
const ADMIN_QUEUE = 64

/**
 * A Dispatcher that serves the `zrpc.broker` methods.
 *
 * @example
 * const admin = adminDispatcher({ overview: () => broker.overview(), disconnectWorker: (id) => broker.disconnectWorker(id) })
 * admin.handle(request, peer, (frame) => sendToClient(frame))
 */
export function adminDispatcher(target: AdminTarget): Dispatcher {
  const handlers = new Map<string, RawHandler>([
    ['services', () => Promise.resolve(encodeCbor(target.overview()))],
    ['tickets', () => encodeCbor(target.tickets())],
    [
      'disconnectWorker',
      (params) => {
        const value = decodeCbor(params) as { identity?: unknown } | null
        const identity = typeof value === 'object' && value !== null ? value.identity : undefined
        if (typeof identity !== 'string' || identity.length === 0) {
          return Promise.reject(new RpcError('INVALID_ARGUMENT', 'disconnectWorker needs { identity: string } (a worker identity from services())'))
        }
        return Promise.resolve(encodeCbor(target.disconnectWorker(identity)))
      },
    ],
  ])
  return new Dispatcher((service, method) => (service === BrokerAdmin.name ? handlers.get(method) : undefined), {
    maxConcurrent: ADMIN_CONCURRENCY,
    maxQueued: ADMIN_QUEUE,
    // Its answers are cheap to make again and change from call to call: nothing to keep for retries.
    callRecord: false,
  })
}
