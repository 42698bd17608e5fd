/**
 * What the broker reads of a message: the REQUEST, CANCEL and CREDIT envelopes of a client's frame,
 * each on its own (a zrpc client may join several for one service into one frame), and the answers
 * and stream items in a worker's REPLY, by header only: routing never opens params or results.
 */
import { DEFAULT_CBOR_LIMITS, type CborLimits } from '../codec/cbor.js'
import { PROTOCOL_VERSION, Kind, parseFrame, type Envelope, type Malformed, type RequestEnvelope } from '../codec/envelope.js'
import { peekHeader } from '../codec/envelope-heads.js'

/** CBOR limits for a broker whose sockets accept `maxMessageSize` bytes. */
export function brokerLimits(maxMessageSize: number): CborLimits {
  return { ...DEFAULT_CBOR_LIMITS, maxBytes: maxMessageSize }
}

/**
 * One envelope of a client's frame: a request to queue, a CANCEL or CREDIT to route to the worker
 * that holds the call, or why not (with the id to answer when one could be read).
 */
export type Intake =
  | { ok: true; request: RequestEnvelope }
  | { ok: 'follow-up'; id: number; cancel: boolean }
  | { ok: 'auth'; publicKey: Uint8Array; proof: Uint8Array }
  | { ok: false; id: number | undefined; reason: string }

/** Checks one envelope read from a client's frame sent to MDP service `service`. */
export function checkRequest(service: string, env: Envelope | Malformed): Intake {
  if (env.kind === 'malformed') return { ok: false, id: env.id, reason: env.reason }
  if (env.kind === Kind.Cancel || env.kind === Kind.Credit) return { ok: 'follow-up', id: env.id, cancel: env.kind === Kind.Cancel }
  if (env.kind === Kind.Auth) return { ok: 'auth', publicKey: env.publicKey, proof: env.proof }
  if (env.kind !== Kind.Request) return { ok: false, id: env.id, reason: 'expected REQUEST, CANCEL or CREDIT envelopes' }
  if (env.service !== service) return { ok: false, id: env.id, reason: `REQUEST for service ${env.service} sent to MDP service ${service}` }
  return { ok: true, request: env }
}

/**
 * Whether a client's MDP body is meant as zrpc: one frame that starts like an envelope (an array of
 * three or more unsigned integers first; a wrong version is still answered as zrpc). Any other body
 * (the guide's clients send text or binary frames) is a plain request, routed unopened.
 */
export function isZrpcBody(body: readonly Buffer[]): boolean {
  const [frame] = body
  return body.length === 1 && frame !== undefined && peekHeader(frame) !== undefined
}

/**
 * The call a worker's envelope belongs to, read from its header: a REPLY or ERROR ends it, an ITEM
 * (a stream's) does not. Undefined for anything else.
 */
export function answerOf(envelope: Uint8Array): { readonly id: number; readonly ends: boolean; readonly error: boolean } | undefined {
  const header = peekHeader(envelope)
  if (header === undefined || header.version !== PROTOCOL_VERSION) return undefined
  if (header.kind === Kind.Reply || header.kind === Kind.Error) return { id: header.id, ends: true, error: header.kind === Kind.Error }
  return header.kind === Kind.Item ? { id: header.id, ends: false, error: false } : undefined
}

/** True when `body` is exactly one REPLY or ERROR envelope for call `id` (a plain MDP worker's answer). */
export function isAnswerTo(id: number, body: readonly Buffer[], limits: CborLimits): boolean {
  const [frame] = body
  if (body.length !== 1 || frame === undefined) return false
  const envelopes = parseFrame(frame, limits)
  const [env] = envelopes
  return envelopes.length === 1 && env !== undefined && (env.kind === Kind.Reply || env.kind === Kind.Error) && env.id === id
}
