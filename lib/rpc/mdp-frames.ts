/**
 * 7/MDP messages for a TransportSocket: the frames in front of a body, as `pushWithHead(head, body, to)`
 * takes them. The constants and parsers come from patterns/majordomo-protocol.ts (pure helpers).
 *
 * ```
 * broker -> client  REPLY      [] MDPC01 <service> <body>
 * broker -> worker  REQUEST    [] MDPW01 0x02 <client> [] <body>
 * worker -> broker  READY      [] MDPW01 0x01 <service>
 * worker -> broker  REPLY      [] MDPW01 0x03 <client> [] <body>
 * either            HEARTBEAT  [] MDPW01 0x04
 * either            DISCONNECT [] MDPW01 0x05
 * ```
 */
import { Command, MDPC01, MDPW01 } from '../../patterns/majordomo-protocol.js'

const EMPTY = Buffer.alloc(0)
const CLIENT = Buffer.from(MDPC01)
const WORKER = Buffer.from(MDPW01)
const WORKER_HEAD: readonly Buffer[] = [EMPTY, WORKER]

/** A body-less worker command (HEARTBEAT, DISCONNECT) as head and body for pushWithHead. */
export function commandFrames(command: typeof Command.Heartbeat | typeof Command.Disconnect): [readonly Buffer[], Buffer] {
  return [WORKER_HEAD, Buffer.of(command)]
}

/** READY for `service`. */
export function readyFrames(service: string): [readonly Buffer[], Buffer] {
  return [[EMPTY, WORKER, Buffer.of(Command.Ready)], Buffer.from(service)]
}

/** The head of a REQUEST (broker to worker) or REPLY (worker to broker) for `client`. */
export function addressedHead(command: typeof Command.Request | typeof Command.Reply, client: Buffer): readonly Buffer[] {
  return [EMPTY, WORKER, Buffer.of(command), client, EMPTY]
}

/** The head of a reply to a client, from `service`; `extra` frames go between (MMI echoes them). */
export function clientHead(service: string | Buffer, extra: readonly Buffer[] = []): readonly Buffer[] {
  return [EMPTY, CLIENT, typeof service === 'string' ? Buffer.from(service) : service, ...extra]
}
