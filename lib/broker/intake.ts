/**
 * What the broker reads of a message: each REQUEST is parsed once, on arrival, with the broker's
 * own size limit, and each worker REPLY is checked to be one answer to the request it holds.
 */
import { DEFAULT_CBOR_LIMITS, type CborLimits } from '../codec/cbor.js'
import { Kind, parseFrame, type RequestEnvelope } from '../codec/envelope.js'

/** A readable request, or why not (with the id to answer when one could be read). */
export type Intake = { ok: true; request: RequestEnvelope; frame: Buffer } | { ok: false; id: number | undefined; reason: string }

/** CBOR limits for a broker whose sockets accept `maxMessageSize` bytes. */
export function brokerLimits(maxMessageSize: number): CborLimits {
  return { ...DEFAULT_CBOR_LIMITS, maxBytes: maxMessageSize }
}

/** Reads an MDP request body: exactly one frame holding exactly one REQUEST for `service`. */
export function readRequest(service: string, body: readonly Buffer[], limits: CborLimits): Intake {
  const [frame] = body
  if (body.length !== 1 || frame === undefined) return { ok: false, id: undefined, reason: `expected one body frame, got ${body.length}` }
  const envelopes = parseFrame(frame, limits)
  const [env] = envelopes
  if (env === undefined) return { ok: false, id: undefined, reason: 'empty frame' }
  const id = env.id ?? undefined
  if (envelopes.length !== 1) return { ok: false, id, reason: `expected one envelope per broker request, got ${envelopes.length}` }
  if (env.kind === 'malformed') return { ok: false, id, reason: env.reason }
  if (env.kind !== Kind.Request) return { ok: false, id, reason: 'expected a REQUEST envelope' }
  if (env.service !== service) return { ok: false, id, reason: `REQUEST for service ${env.service} sent to MDP service ${service}` }
  return { ok: true, request: env, frame }
}

/** True when `body` is exactly one REPLY or ERROR envelope for call `id`. */
export function isAnswerTo(id: number, body: readonly Buffer[], limits: CborLimits): boolean {
  const [frame] = body
  if (body.length !== 1 || frame === undefined) return false
  const envelopes = parseFrame(frame, limits)
  const [env] = envelopes
  return envelopes.length === 1 && env !== undefined && (env.kind === Kind.Reply || env.kind === Kind.Error) && env.id === id
}
