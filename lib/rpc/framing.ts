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

/** Where a framing writes: the channel's TransportSocket. */
export interface FrameWriter {
  push(body: Buffer): boolean
  pushWithHead(head: readonly Buffer[], body: Buffer): boolean
}

/** A received message opened: the zrpc frame and, through a broker, the service it says it is from. */
export interface Unwrapped {
  readonly frame: Buffer
  /** The MDP service frame (mdp only): a reply must come from the service its call went to. */
  readonly service?: string
}

export interface Framing {
  /** Several envelopes may share one frame (direct only: a broker routes one request per message). */
  readonly coalesce: boolean
  /** A CANCEL can reach the server. Through MDP/0.1 it cannot: there is no way to address the worker. */
  readonly canCancel: boolean
  /**
   * Every received message carries exactly one envelope, from the service its call went to (mdp).
   * A message that breaks this is dropped whole: a broker relays what workers send, and a worker of
   * another service must not be able to end this client's calls.
   */
  readonly oneReplyPerMessage: boolean
  /** Queues one frame for `service`; false if the queue refused it. */
  push(socket: FrameWriter, service: string, frame: Buffer): boolean
  /** The zrpc frame inside a received message, or undefined if the message has another shape. */
  unwrap(message: readonly Buffer[]): Unwrapped | undefined
}

/** Frames straight to a zrpc server. */
export const directFraming: Framing = {
  coalesce: true,
  canCancel: true,
  oneReplyPerMessage: false,
  push: (socket, _service, frame) => socket.push(frame),
  unwrap: (message) => (message.length === 1 ? { frame: message[0]! } : undefined),
}

const EMPTY = Buffer.alloc(0)
const HEADER = Buffer.from(MDPC01)

/** Frames as Majordomo (7/MDP) client requests and replies, one request per message. */
export const mdpFraming: Framing = {
  coalesce: false,
  canCancel: false,
  oneReplyPerMessage: true,
  push: (socket, service, frame) => socket.pushWithHead([EMPTY, HEADER, Buffer.from(service)], frame),
  unwrap: (message) => {
    const [empty, header, service, frame] = message
    if (message.length !== 4 || empty === undefined || empty.length !== 0 || !isHeader(header, MDPC01)) return undefined
    return { frame: frame!, service: service!.toString() }
  },
}
