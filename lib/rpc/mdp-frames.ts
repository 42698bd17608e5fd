/**
 * 7/MDP messages for a TransportSocket: the frames in front of a body, as `pushWithHead(head, body, to)`
 * takes them. The constants and parsers come from patterns/majordomo-protocol.ts (pure helpers).
 *
 * ```
 * broker -> client  REPLY      [] MDPC01 <service> <body>
 * broker -> worker  REQUEST    [] MDPW01 0x02 <client> [] <body>
 * worker -> broker  READY      [] MDPW01 0x01 <service> [<zrpc worker frame>]
 * worker -> broker  REPLY      [] MDPW01 0x03 <client> [] <body>
 * either            HEARTBEAT  [] MDPW01 0x04
 * either            DISCONNECT [] MDPW01 0x05
 * ```
 * The zrpc worker frame (docs/protocol.md, "credit workers") is a CBOR map `{ "credit": N }`: the
 * worker takes up to N requests at once, several per message, and beats while busy. Brokers that do
 * not know it ignore frames after the service, as the guide's reference brokers do.
 */
import { Command, MDPC01, MDPW01 } from '../../patterns/majordomo-protocol.js'
import { DEFAULT_CBOR_LIMITS, decodeCbor, encodeCbor } from '../codec/cbor.js'

const EMPTY = Buffer.alloc(0)
const CLIENT = Buffer.from(MDPC01)
const WORKER = Buffer.from(MDPW01)
const WORKER_HEAD: readonly Buffer[] = [EMPTY, WORKER]

/** A body-less worker command (HEARTBEAT, DISCONNECT) as head and body for pushWithHead. */
export function commandFrames(command: typeof Command.Heartbeat | typeof Command.Disconnect): [readonly Buffer[], Buffer] {
  return [WORKER_HEAD, Buffer.of(command)]
}

/** The MMI name a zrpc broker answers 200: a client joins its calls only after that answer. */
export const MMI_ZRPC = 'mmi.zrpc'

/** Most requests a credit worker may declare it takes at once. */
export const MAX_WORKER_CREDIT = 4096

/** READY for `service`, declaring `credit` (a credit worker) unless it is undefined (a plain MDP worker). */
export function readyFrames(service: string, credit?: number): [readonly Buffer[], Buffer] {
  if (credit === undefined) return [[EMPTY, WORKER, Buffer.of(Command.Ready)], Buffer.from(service)]
  return [[EMPTY, WORKER, Buffer.of(Command.Ready), Buffer.from(service)], encodeCbor({ credit })]
}

/**
 * The credit a READY's extra frames declare: undefined for none (a plain MDP worker), or an error
 * message when they are not one zrpc worker frame with a credit from 1 to {@link MAX_WORKER_CREDIT}.
 */
export function readCredit(extra: readonly Buffer[]): number | undefined | { invalid: string } {
  if (extra.length === 0) return undefined
  const [frame] = extra
  if (extra.length !== 1 || frame === undefined || frame.length > 256) return { invalid: 'READY takes at most one zrpc worker frame of up to 256 bytes' }
  let value: unknown
  try {
    value = decodeCbor(frame, { ...DEFAULT_CBOR_LIMITS, maxBytes: 256 })
  } catch {
    return { invalid: 'the zrpc worker frame in READY is not CBOR' }
  }
  const credit = typeof value === 'object' && value !== null ? (value as { credit?: unknown }).credit : undefined
  if (typeof credit !== 'number' || !Number.isInteger(credit) || credit < 1 || credit > MAX_WORKER_CREDIT) {
    return { invalid: `the zrpc worker frame in READY needs a credit from 1 to ${MAX_WORKER_CREDIT}` }
  }
  return credit
}

/** The head of a REQUEST (broker to worker) or REPLY (worker to broker) for `client`. */
export function addressedHead(command: typeof Command.Request | typeof Command.Reply, client: Buffer): readonly Buffer[] {
  return [EMPTY, WORKER, Buffer.of(command), client, EMPTY]
}

/** The head of a reply to a client, from `service`; `extra` frames go between (MMI echoes them). */
export function clientHead(service: string | Buffer, extra: readonly Buffer[] = []): readonly Buffer[] {
  return [EMPTY, CLIENT, typeof service === 'string' ? Buffer.from(service) : service, ...extra]
}
