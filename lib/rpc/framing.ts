/**
 * How a channel's zrpc frames travel on its DEALER: alone (straight to a server's ROUTER), or inside
 * Majordomo client messages (through a broker).
 *
 * ```
 *   direct  ->  [ frame ]                                  <-  [ frame ]
 *   mdp     ->  [ '' ][ 'MDPC01' ][ service ][ frame ]     <-  [ '' ][ 'MDPC01' ][ service ][ frame ]
 *   mdp     ->  [ '' ][ 'MDPC01' ][ 'mmi.zrpc' ][ 'zrpc/1' ]   <-  [ '' ][ 'MDPC01' ][ 'mmi.zrpc' ][ '200' ]( [ 'durable' ] )
 * ```
 * Through a broker, the calls of one turn for one service are joined into one frame only once the
 * broker has answered `mmi.zrpc` with 200 (a zrpc broker, which splits them); until then, and with
 * any other broker (the guide's reference answers 501), each call rides in a message of its own.
 * CANCEL and CREDIT go only to a zrpc broker (it routes them to the worker holding the call), and
 * streams wait for its answer: another broker would take each of them for a new request.
 */
import { MDPC01, isHeader } from '../../patterns/majordomo-protocol.js'
import type { Body } from '../transport/send-queue.js'
import { MMI_ZRPC, clientHead } from './mdp-frames.js'

/** Where a framing writes: the channel's TransportSocket. */
export interface FrameWriter {
  push(body: Body): boolean
  pushWithHead(head: readonly Buffer[], body: Body, to?: Buffer, joinable?: boolean): boolean
}

/** A received message opened: the zrpc frame and, through a broker, the service it says it is from. */
export interface Unwrapped {
  readonly frame: Buffer
  /** The MDP service frame (mdp only): a reply must come from the service its call went to. */
  readonly service?: string
}

export interface Framing {
  /** Frames may be joined by the socket's send queue at all (each push still says whether this one may). */
  readonly coalesce: boolean
  /**
   * A CANCEL or CREDIT can reach the server. Through a plain 7/MDP broker it cannot (there is no way
   * to address the worker); a zrpc broker routes them to the worker that holds the call.
   */
  readonly canCancel: boolean
  /** Streams can travel: true direct and through a zrpc broker, false through another broker, undefined until the broker has said which it is. */
  readonly streams: boolean | undefined
  /**
   * The peer keeps the calls it accepted across its own restart (a durable zrpc broker): calls in
   * flight when the connection drops are sent again on the new one, with the same ids, instead of failing.
   */
  readonly durable: boolean
  /**
   * Every received message must carry exactly one envelope (a broker not known to check replies).
   * A message that breaks this is dropped whole: a broker that relays whatever workers send would
   * otherwise let a worker end several calls with one message.
   */
  readonly oneReplyPerMessage: boolean
  /** Queues one frame (or an envelope written when it leaves) for `service`; false if the queue refused it. */
  push(socket: FrameWriter, service: string, frame: Body): boolean
  /** The connection is (again) up: a framing that must ask its peer something asks here. */
  connected?(socket: FrameWriter): void
  /** The zrpc frame inside a received message; undefined if the message has another shape, null if the framing took it. */
  unwrap(message: readonly Buffer[]): Unwrapped | undefined | null
}

/** Frames straight to a zrpc server. */
export const directFraming: Framing = {
  coalesce: true,
  canCancel: true,
  streams: true,
  durable: false,
  oneReplyPerMessage: false,
  push: (socket, _service, frame) => socket.push(frame),
  unwrap: (message) => (message.length === 1 ? { frame: message[0]! } : undefined),
}

const PROBE_HEAD = clientHead(MMI_ZRPC)
const PROBE_BODY = Buffer.from('zrpc/1')

/**
 * Frames as Majordomo (7/MDP) client requests and replies: one call per message until the broker
 * says it is a zrpc broker, then the calls of one turn for one service joined. One per channel.
 */
export function mdpFraming(): Framing {
  /** `[] MDPC01 <service>` per service: one array per name, so the send queue joins the calls behind it. */
  const heads = new Map<string, readonly Buffer[]>()
  let zrpcBroker = false
  let answered = false
  let durable = false
  return {
    coalesce: true,
    get canCancel() {
      return zrpcBroker
    },
    get streams() {
      return answered ? zrpcBroker : undefined
    },
    // Kept from the last answer across a reconnect: the broker that comes back is the one that said so.
    get durable() {
      return durable
    },
    get oneReplyPerMessage() {
      return !zrpcBroker
    },
    push: (socket, service, frame) => {
      let head = heads.get(service)
      if (head === undefined) {
        head = clientHead(service)
        heads.set(service, head)
      }
      return socket.pushWithHead(head, frame, undefined, zrpcBroker)
    },
    connected: (socket) => {
      // Another broker may be listening now: ask again, and join nothing until it answers.
      zrpcBroker = false
      answered = false
      socket.pushWithHead(PROBE_HEAD, PROBE_BODY)
    },
    unwrap: (message) => {
      const [empty, header, service, frame] = message
      if (empty === undefined || empty.length !== 0 || !isHeader(header, MDPC01) || service === undefined) return undefined
      const name = service.toString()
      if (name === MMI_ZRPC) {
        // [ '' MDPC01 mmi.zrpc '200' ] from a zrpc broker, [ ... '200' 'durable' ] from a durable one.
        zrpcBroker = frame?.toString() === '200'
        durable = zrpcBroker && message[4]?.toString() === 'durable'
        answered = true
        return null
      }
      if (message.length !== 4) return undefined
      return { frame: frame!, service: name }
    },
  }
}
