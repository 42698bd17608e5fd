/**
 * How a channel's zrpc frames travel on its DEALER: alone (straight to a server's ROUTER), or inside
 * Majordomo client messages (through a broker).
 *
 * ```
 *   direct  ->  [ frame ]                                  <-  [ frame ]
 *   mdp     ->  [ '' ][ 'MDPC01' ][ service ][ frame ]     <-  [ '' ][ 'MDPC01' ][ service ][ frame ]
 * ```
 */
import { MDPC01, isHeader } from '../../patterns/majordomo-protocol.js'
import type { SendQueue } from '../transport/send-queue.js'

export interface Framing {
  /** Several envelopes may share one frame (direct only: a broker routes one request per message). */
  readonly coalesce: boolean
  /** A CANCEL can reach the server. Through MDP/0.1 it cannot: there is no way to address the worker. */
  readonly canCancel: boolean
  /** Queues one frame for `service`; false if the queue refused it. */
  push(queue: SendQueue, service: string, frame: Buffer): boolean
  /** The zrpc frame inside a received message, or undefined if the message has another shape. */
  unwrap(message: readonly Buffer[]): Buffer | undefined
}

/** Frames straight to a zrpc server. */
export const directFraming: Framing = {
  coalesce: true,
  canCancel: true,
  push: (queue, _service, frame) => queue.push(frame),
  unwrap: (message) => (message.length === 1 ? message[0] : undefined),
}

const EMPTY = Buffer.alloc(0)
const HEADER = Buffer.from(MDPC01)

/** Frames as Majordomo (7/MDP) client requests and replies, one request per message. */
export const mdpFraming: Framing = {
  coalesce: false,
  canCancel: false,
  push: (queue, service, frame) => queue.pushWithHead([EMPTY, HEADER, Buffer.from(service)], frame),
  unwrap: (message) => {
    const [empty, header, , frame] = message
    if (message.length !== 4 || empty === undefined || empty.length !== 0 || !isHeader(header, MDPC01)) return undefined
    return frame
  },
}
