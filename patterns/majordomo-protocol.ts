/**
 * Majordomo protocol (ZeroMQ RFC 7, MDP/0.1) and MMI (RFC 8): constants, frame builders and parsers,
 * and the one-writer send queue. Shared by the broker, worker and client files (the guide's `mdp.h`):
 * copy this file together with the role you need.
 *
 * ```
 * client -> broker  REQUEST     []  MDPC01  <service>  <body...>
 * broker -> client  REPLY       []  MDPC01  <service>  <body...>
 * worker -> broker  READY       []  MDPW01  0x01  <service>
 * broker -> worker  REQUEST     []  MDPW01  0x02  <client address>  []  <body...>
 * worker -> broker  REPLY       []  MDPW01  0x03  <client address>  []  <body...>
 * either            HEARTBEAT   []  MDPW01  0x04
 * either            DISCONNECT  []  MDPW01  0x05
 * ```
 * `[]` is an empty frame; a REQ client gets it added and removed invisibly. The broker's ROUTER adds
 * the peer's routing id in front of every message it receives.
 */

/** Client header frame, MDP/0.1. */
export const MDPC01 = 'MDPC01'
/** Worker header frame, MDP/0.1. */
export const MDPW01 = 'MDPW01'
/** Worker command codes (one-byte frame). */
export const Command = { Ready: 0x01, Request: 0x02, Reply: 0x03, Heartbeat: 0x04, Disconnect: 0x05 } as const
export type Command = (typeof Command)[keyof typeof Command]
/** Services in this namespace are answered by the broker itself (RFC 8). */
export const MMI_PREFIX = 'mmi.'
/** Reference defaults: heartbeat interval and liveness (missed heartbeats before a peer is dead). */
export const HEARTBEAT_MS = 2500
export const HEARTBEAT_LIVENESS = 3

/** Frames as a user writes them. */
export type Frames = Buffer | string | ReadonlyArray<Buffer | string>
/** A line logger; lines start with `I:`, `W:` or `E:`. */
export type LogFn = (line: string) => void

/** Normalizes user frames to Buffers. */
export function toFrames(body: Frames): Buffer[] {
  const list = typeof body === 'string' || Buffer.isBuffer(body) ? [body] : body
  return list.map((f) => (typeof f === 'string' ? Buffer.from(f) : f))
}

const EMPTY = Buffer.alloc(0)
const CLIENT_HEADER = Buffer.from(MDPC01)
const WORKER_HEADER = Buffer.from(MDPW01)

/** True when `frame` is exactly `header`. */
export function isHeader(frame: Buffer | undefined, header: typeof MDPC01 | typeof MDPW01): boolean {
  return frame !== undefined && frame.equals(header === MDPC01 ? CLIENT_HEADER : WORKER_HEADER)
}

/** Client REQUEST or broker REPLY, DEALER form (leading empty frame included). */
export function clientFrames(service: string, body: readonly Buffer[]): Buffer[] {
  return [EMPTY, CLIENT_HEADER, Buffer.from(service), ...body]
}

/** A worker-protocol command, DEALER form: `[] MDPW01 <command> <rest...>`. */
export function workerFrames(command: Command, ...rest: Buffer[]): Buffer[] {
  return [EMPTY, WORKER_HEADER, Buffer.of(command), ...rest]
}

/** REQUEST (broker to worker) or REPLY (worker to broker) carrying a client address and body. */
export function addressedFrames(command: typeof Command.Request | typeof Command.Reply, client: Buffer, body: readonly Buffer[]): Buffer[] {
  return workerFrames(command, client, EMPTY, ...body)
}

/** Why a message was dropped as invalid. */
export type InvalidReason = 'bad-envelope' | 'bad-header' | 'bad-command' | 'bad-frames'

/** A parsed worker-protocol message (either direction). */
export type WorkerMessage =
  | { kind: 'ready'; service: string; extra: Buffer[] }
  | { kind: 'request' | 'reply'; client: Buffer; body: Buffer[] }
  | { kind: 'heartbeat' }
  | { kind: 'disconnect' }
  | { kind: 'invalid'; reason: InvalidReason }

/**
 * Parses `[] MDPW01 <command> ...` (routing id already removed). Frame counts are checked exactly:
 * READY has a service frame (frames after it are returned as `extra`: the reference brokers ignore
 * them, extensions may use them), HEARTBEAT and DISCONNECT none, REQUEST/REPLY an address and `[]`.
 */
export function parseWorkerMessage(frames: readonly Buffer[]): WorkerMessage {
  const [empty, header, command, ...rest] = frames
  if (!empty || empty.length !== 0) return { kind: 'invalid', reason: 'bad-envelope' }
  if (!isHeader(header, MDPW01)) return { kind: 'invalid', reason: 'bad-header' }
  if (!command || command.length !== 1) return { kind: 'invalid', reason: 'bad-command' }
  const bad = { kind: 'invalid', reason: 'bad-frames' } as const
  const code = command.readUInt8(0)
  switch (code) {
    case Command.Ready: {
      const [service, ...extra] = rest
      return service && service.length > 0 ? { kind: 'ready', service: service.toString(), extra } : bad
    }
    case Command.Request:
    case Command.Reply: {
      const [client, delimiter, ...body] = rest
      if (!client || client.length === 0 || !delimiter || delimiter.length !== 0) return bad
      return { kind: code === Command.Request ? 'request' : 'reply', client, body }
    }
    case Command.Heartbeat:
      return rest.length === 0 ? { kind: 'heartbeat' } : bad
    case Command.Disconnect:
      return rest.length === 0 ? { kind: 'disconnect' } : bad
    default:
      return { kind: 'invalid', reason: 'bad-command' }
  }
}

/** Parses `[] MDPC01 <service> <body...>` (routing id already removed); needs a non-empty service. */
export function parseClientMessage(frames: readonly Buffer[]): { service: string; body: Buffer[] } | { invalid: InvalidReason } {
  const [empty, header, service, ...body] = frames
  if (!empty || empty.length !== 0) return { invalid: 'bad-envelope' }
  if (!isHeader(header, MDPC01)) return { invalid: 'bad-header' }
  if (!service || service.length === 0) return { invalid: 'bad-frames' }
  return { service: service.toString(), body }
}

/** Anything with zeromq.js's `send()` and `closed`. */
export interface Sendable {
  send(frames: Buffer[]): Promise<void>
  readonly closed: boolean
}

/**
 * One writer per socket: queues messages and sends them one at a time.
 *
 * Why: zeromq.js throws EBUSY synchronously on a second concurrent `send()`, and a send pending
 * at close rejects; this queue serializes sends and turns both into a `false` result.
 *
 * @example
 * const out = new SendQueue(dealer)
 * void out.push(workerFrames(Command.Heartbeat))
 */
export class SendQueue {
  private readonly queue: { frames: Buffer[]; done: (sent: boolean) => void }[] = []
  private pumping = false

  constructor(private readonly socket: Sendable) {}

  /** Messages waiting to be sent. */
  get length(): number {
    return this.queue.length
  }

  /** Queues a message; resolves `true` once handed to the socket, `false` if the socket closed first. Never rejects. */
  push(frames: Buffer[]): Promise<boolean> {
    if (this.socket.closed) return Promise.resolve(false)
    return new Promise((done) => {
      this.queue.push({ frames, done })
      if (!this.pumping) void this.pump()
    })
  }

  private async pump(): Promise<void> {
    this.pumping = true
    for (let item = this.queue.shift(); item; item = this.queue.shift()) {
      try {
        await this.socket.send(item.frames)
        item.done(true)
      } catch {
        item.done(false)
        if (this.socket.closed) {
          for (const rest of this.queue.splice(0)) rest.done(false)
        }
      }
    }
    this.pumping = false
  }
}
