/**
 * The receive side of a channel: which received envelope may end which call.
 *
 * A REPLY or ERROR ends the written call with its id; an ITEM goes to the stream with its id. Everything else is dropped and counted, never
 * allowed to end a call it does not belong to:
 * ```
 *   message of another shape                       malformed
 *   unknown kind (a newer peer)                    unknownKinds     even with the id of a call in flight
 *   id of no call in flight, or of an unsent one   lateReplies
 *   through a broker: a service frame other than   misrouted        a worker of one service must not
 *     the call's, or (a broker not known to check                   end the calls made to another
 *     replies) not exactly one envelope
 * ```
 */
import { RpcError } from '../errors.js'
import type { CborLimits } from '../codec/cbor.js'
import { Kind, parseFrame, type Envelope, type Malformed } from '../codec/envelope.js'
import type { Framing } from './framing.js'

/** A call as the receive side sees it. */
export interface ReplyTarget {
  readonly service: string
  /** Written to the socket: a reply for a call still waiting to be sent is forged. */
  readonly sent: boolean
  /** `performance.now()` when the channel took it: its answer time feeds the endpoint's latency average. */
  readonly sentAt: number
  /** Set for a stream (its end is not an answer time). */
  readonly window: number | undefined
  resolve(result: Uint8Array): void
  reject(err: RpcError): void
  /** An ITEM of a stream (a unary call rejects it). */
  item(payload: Uint8Array): void
}

/** What the receive side counts. */
export interface ReplyCounters {
  /** Replies for calls that had already ended (late, cancelled) or ids never sent: dropped quietly. */
  lateReplies: number
  /** Frames or envelopes from the server that could not be read. */
  malformed: number
  /** Envelopes of a kind this client does not know (a newer peer): ignored, as protocol.md says. */
  unknownKinds: number
  /** Broker messages dropped: a reply from another service than its call's, or several envelopes from a broker not known to check them. */
  misrouted: number
}

/** Everything `deliver` needs from its channel. */
export interface ReplyContext {
  readonly endpoint: string
  readonly framing: Framing
  readonly limits: CborLimits
  readonly pending: ReadonlyMap<number, ReplyTarget>
  readonly counters: ReplyCounters
  /** The server answered this call (REPLY or ERROR), right before it ends. */
  answered(call: ReplyTarget): void
}

/** Reads one received message and ends the calls it may end. */
export function deliver(message: Buffer[], ctx: ReplyContext): void {
  const opened = ctx.framing.unwrap(message)
  if (opened === null) return
  if (opened === undefined) {
    ctx.counters.malformed++
    return
  }
  const envelopes = parseFrame(opened.frame, ctx.limits)
  if (ctx.framing.oneReplyPerMessage && envelopes.length !== 1) {
    ctx.counters.misrouted++
    return
  }
  for (const env of envelopes) deliverOne(env, opened.service, ctx)
}

function deliverOne(env: Envelope | Malformed, from: string | undefined, ctx: ReplyContext): void {
  if (env.kind === 'malformed') {
    if (isUnknownKind(env)) {
      ctx.counters.unknownKinds++
      return
    }
    ctx.counters.malformed++
    // A reply we cannot read still ends its call, if we know which call it was.
    const call = env.id === undefined ? undefined : callFor(env.id, from, ctx)
    call?.reject(new RpcError('INTERNAL', `unreadable reply from ${ctx.endpoint}: ${env.reason}`))
    return
  }
  // A PONG needs nothing more: the channel has already heard from the server by reading this frame.
  if (env.kind === Kind.Pong) return
  if (env.kind === Kind.Request || env.kind === Kind.Cancel || env.kind === Kind.Ping || env.kind === Kind.Credit || env.kind === Kind.End || env.kind === Kind.Auth) {
    ctx.counters.malformed++
    return
  }
  const call = callFor(env.id, from, ctx)
  if (call === undefined) return
  if (env.kind === Kind.Item) return call.item(env.payload)
  if (call.window === undefined) ctx.answered(call)
  // The codec has already turned an ERROR whose code is unknown or not text into UNKNOWN.
  if (env.kind === Kind.Reply) call.resolve(env.result)
  else call.reject(new RpcError(env.code, env.message, env.details ?? undefined))
}

/** The written call with this id, if a message from `from` may end it; counts what it drops. */
function callFor(id: number, from: string | undefined, ctx: ReplyContext): ReplyTarget | undefined {
  const call = ctx.pending.get(id)
  if (call === undefined || !call.sent) {
    ctx.counters.lateReplies++
    return undefined
  }
  if (from !== undefined && from !== call.service) {
    ctx.counters.misrouted++
    return undefined
  }
  return call
}

/**
 * The codec marks an unknown kind with `unknownKind`; an older codec marks it only with the code
 * UNIMPLEMENTED, which it uses for nothing else at a client.
 */
function isUnknownKind(env: Malformed): boolean {
  return 'unknownKind' in env || env.code === 'UNIMPLEMENTED'
}
