/**
 * The zrpc/1 envelope: how calls, replies, errors and cancels are written into a frame.
 *
 * Every frame is a CBOR sequence of one or more envelopes. Each envelope is a CBOR array whose first
 * two items are the protocol version and the message kind. Payloads (params, results) ride as byte
 * strings holding their own CBOR, so an intermediary such as the broker can read an envelope's header
 * (id, deadline) without touching the payload.
 *
 * ```
 *   REQUEST  [1, 0, id, service, method, timeoutMs, metadata | null, params: bstr, window | null, key | null, ...]
 *   REPLY    [1, 1, id, result: bstr, ...]            ends a call (a stream: its last message, result null)
 *   ERROR    [1, 2, id, code: tstr, message: tstr, details | null, ...]
 *   CANCEL   [1, 3, id, ...]
 *   PING     [1, 4, id]   PONG [1, 5, id]             heartbeats
 *   ITEM     [1, 6, id, payload: bstr, ...]           one item of a stream (either direction)
 *   CREDIT   [1, 7, id, n, ...]                       the stream's receiver lets its sender send n more ITEMs
 *   END      [1, 8, id, ...]                          reserved: a client's half-close (client streams)
 *   AUTH     [1, 9, 0, publicKey: bstr, proof: bstr]  a CURVE client names its key and proves it holds it
 *   10..15   reserved: a server answers UNIMPLEMENTED, a client ignores them
 *   ...      items a later minor version appends, ignored
 * ```
 * A frame is read in two steps: {@link scanFrame} finds the envelopes in one pass over the bytes and
 * {@link readEnvelope} decodes one; the limits on each envelope are in envelope-limits.ts.
 * docs/protocol.md is the normative text.
 */
import { isStatusCode, type StatusCode } from '../errors.js'
import { CborProfileError, DEFAULT_CBOR_LIMITS, decodeChecked, encodeCbor, scanCborSequence, type CborLimits } from './cbor.js'
import { peekHeader } from './envelope-heads.js'
import { MAX_CALL_KEY_BYTES, MAX_STREAM_CREDIT, checkMetadata, envelopeCborLimits } from './envelope-limits.js'
import { readCommonEnvelope } from './envelope-read.js'
import { replySize, requestSize, writeReply, writeRequest } from './envelope-write.js'
import { capText, describe } from './envelope-text.js'

export { ENVELOPE_LIMITS, MAX_CALL_KEY_BYTES, MAX_JOINED_FRAME_BYTES, MAX_STREAM_CREDIT, MIN_MAX_MESSAGE_SIZE, checkMetadata, type EnvelopeLimits } from './envelope-limits.js'
export { MAX_PEER_TEXT } from './envelope-text.js'
export { LazyItem, LazyReply, replySize, requestSize, writeReply, writeRequest } from './envelope-write.js'

export const PROTOCOL_VERSION = 1

export const Kind = { Request: 0, Reply: 1, Error: 2, Cancel: 3, Ping: 4, Pong: 5, Item: 6, Credit: 7, End: 8, Auth: 9 } as const
export type Kind = (typeof Kind)[keyof typeof Kind]

/** Call metadata: string keys to string values, like gRPC's. */
export type Metadata = Record<string, string>

export interface RequestEnvelope {
  readonly kind: typeof Kind.Request
  readonly id: number
  readonly service: string
  readonly method: string
  /** Milliseconds left when the sender wrote the frame: a relative budget, so clocks need not agree. */
  readonly timeoutMs: number
  readonly metadata: Metadata | null
  /** CBOR bytes of the params; decoded only by the handler's side. */
  readonly params: Uint8Array
  /** Set when the REQUEST opens a stream: ITEMs the server may send before a CREDIT (item 8). */
  readonly window?: number
  /** The call key (item 9), the same in every attempt of one call: a server that ran it answers a retry from its record. */
  readonly key?: Uint8Array
}

export interface ReplyEnvelope {
  readonly kind: typeof Kind.Reply
  readonly id: number
  readonly result: Uint8Array
}

export interface ErrorEnvelope {
  readonly kind: typeof Kind.Error
  readonly id: number
  readonly code: StatusCode
  readonly message: string
  readonly details: unknown
}

export interface CancelEnvelope {
  readonly kind: typeof Kind.Cancel
  readonly id: number
}

/** A client asking a server whether it is still there (heartbeat); the id is the client's, from its call ids. */
export interface PingEnvelope {
  readonly kind: typeof Kind.Ping
  readonly id: number
}

/** A server's answer to a PING, with its id. */
export interface PongEnvelope {
  readonly kind: typeof Kind.Pong
  readonly id: number
}

/** One item of stream `id`: CBOR bytes of a value of the method's item schema. */
export interface ItemEnvelope {
  readonly kind: typeof Kind.Item
  readonly id: number
  readonly payload: Uint8Array
}

/** The receiver of stream `id` lets its sender send `n` more ITEMs. */
export interface CreditEnvelope {
  readonly kind: typeof Kind.Credit
  readonly id: number
  readonly n: number
}

/** Reserved for client streams: the client will send no more ITEMs on call `id`. */
export interface EndEnvelope {
  readonly kind: typeof Kind.End
  readonly id: number
}

/**
 * A CURVE client's key and the proof that it holds the secret half (docs/security.md): the server
 * binds the connection to that key, so handlers see it as `ctx.peer.publicKey`.
 */
export interface AuthEnvelope {
  readonly kind: typeof Kind.Auth
  readonly id: number
  /** The client's CURVE public key, 32 bytes. */
  readonly publicKey: Uint8Array
  /** HMAC of the CURVE shared secret of client and server: only the holder of either secret key can make it. */
  readonly proof: Uint8Array
}

export type Envelope = RequestEnvelope | ReplyEnvelope | ErrorEnvelope | CancelEnvelope | PingEnvelope | PongEnvelope | ItemEnvelope | CreditEnvelope | EndEnvelope | AuthEnvelope

/**
 * An envelope that could not be accepted. `id` is set when the envelope was readable far enough to
 * answer it with an error; `code` is the status that answer should carry.
 *
 * @example
 * ```ts
 * if (env.kind === 'malformed') {
 *   if (env.unknownKind !== undefined) stats.unknownKinds++ // a client ignores kinds it does not know
 *   else if (env.id !== undefined) answer(encodeError(env.id, env.code, env.reason))
 * }
 * ```
 */
export interface Malformed {
  readonly kind: 'malformed'
  readonly id: number | undefined
  readonly code: StatusCode
  readonly reason: string
  /**
   * The kind number, set only when the envelope is version 1 with a readable id and an unsigned-integer
   * kind this peer does not know (6..15 are reserved for later minor versions). A server answers it
   * with `code` (`UNIMPLEMENTED`); a client ignores and counts it, and must not end the call for it.
   */
  readonly unknownKind?: number
}

/** Largest id a peer may use: ids must stay exact in a JavaScript number. */
export const MAX_ID = Number.MAX_SAFE_INTEGER

/**
 * An unsigned integer as cbor-x must be given it to write one: it writes numbers of 2^32 and more as
 * 64-bit floats, which the protocol does not allow for ids and budgets (and the broker, reading
 * headers only, does not take: the answer to a call with such an id was dropped and its worker's
 * credit lost). A bigint is written as an unsigned integer.
 */
const uint = (n: number): number | bigint => (n < 0x100000000 ? n : BigInt(n))

// REQUEST (without metadata) and REPLY are written by hand (envelope-write.ts): the bytes are the ones
// cbor-x writes (tests check both).

export function encodeRequest(
  id: number,
  service: string,
  method: string,
  timeoutMs: number,
  metadata: Metadata | null,
  params: Uint8Array,
  window?: number,
  key?: Uint8Array,
): Buffer {
  if (metadata !== null) {
    const items: unknown[] = [PROTOCOL_VERSION, Kind.Request, uint(id), service, method, uint(timeoutMs), metadata, params]
    if (window !== undefined || key !== undefined) items.push(window ?? null)
    if (key !== undefined) items.push(key)
    return encodeCbor(items)
  }
  const serviceBytes = Buffer.byteLength(service)
  const methodBytes = Buffer.byteLength(method)
  const out = Buffer.allocUnsafe(requestSize(id, serviceBytes, methodBytes, timeoutMs, params.length, window, key))
  writeRequest(out, 0, id, service, serviceBytes, method, methodBytes, timeoutMs, params, window, key)
  return out
}

export function encodeReply(id: number, result: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(replySize(id, result.length))
  writeReply(out, 0, id, result)
  return out
}

export function encodeError(id: number, code: StatusCode, message: string, details?: unknown): Buffer {
  return encodeCbor([PROTOCOL_VERSION, Kind.Error, uint(id), code, message, details ?? null])
}

export function encodeCancel(id: number): Buffer {
  return encodeCbor([PROTOCOL_VERSION, Kind.Cancel, uint(id)])
}

export function encodePing(id: number): Buffer {
  return encodeCbor([PROTOCOL_VERSION, Kind.Ping, uint(id)])
}

export function encodePong(id: number): Buffer {
  return encodeCbor([PROTOCOL_VERSION, Kind.Pong, uint(id)])
}

export function encodeCredit(id: number, n: number): Buffer {
  return encodeCbor([PROTOCOL_VERSION, Kind.Credit, uint(id), n])
}

export function encodeAuth(publicKey: Uint8Array, proof: Uint8Array): Buffer {
  return encodeCbor([PROTOCOL_VERSION, Kind.Auth, 0, publicKey, proof])
}

export function encodeItem(id: number, payload: Uint8Array): Buffer {
  return encodeCbor([PROTOCOL_VERSION, Kind.Item, uint(id), payload])
}

/** An unsigned integer up to MAX_ID as a number; cbor-x reads 64-bit heads as bigints, so accept those too. */
function asUint(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 && v <= MAX_ID ? v : undefined
  if (typeof v === 'bigint') return v >= 0n && v <= BigInt(MAX_ID) ? Number(v) : undefined
  return undefined
}
const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array

const malformed = (id: number | undefined, code: StatusCode, reason: string): Malformed => ({ kind: 'malformed', id, code, reason })

/**
 * Checks one decoded item against the envelope shapes.
 *
 * Items past the ones a kind defines are ignored: minor versions of zrpc/1 may append items, and an
 * older receiver must still read the envelope (docs/protocol.md, section 2).
 */
export function toEnvelope(item: unknown): Envelope | Malformed {
  if (!Array.isArray(item) || item.length < 3) return malformed(undefined, 'INVALID_ARGUMENT', 'envelope is not an array of 3 or more items')
  const [version, kind, id] = item as unknown[]
  const knownId = asUint(id)
  if (version !== PROTOCOL_VERSION) {
    return malformed(knownId, 'FAILED_PRECONDITION', `unsupported protocol version ${describe(version)}, this peer speaks ${PROTOCOL_VERSION}`)
  }
  if (knownId === undefined) return malformed(undefined, 'INVALID_ARGUMENT', 'envelope id is not an unsigned integer')
  switch (kind) {
    case Kind.Request: {
      const [, , , service, method, rawTimeout, metadata, params] = item as unknown[]
      const timeoutMs = asUint(rawTimeout)
      if (item.length < 8) return malformed(knownId, 'INVALID_ARGUMENT', 'request envelope must have at least 8 items')
      if (typeof service !== 'string' || typeof method !== 'string') return malformed(knownId, 'INVALID_ARGUMENT', 'service and method must be text')
      if (timeoutMs === undefined) return malformed(knownId, 'INVALID_ARGUMENT', 'timeoutMs must be an unsigned integer')
      const metadataProblem = checkMetadata(metadata)
      if (metadataProblem !== undefined) return malformed(knownId, 'INVALID_ARGUMENT', metadataProblem)
      if (!isBytes(params)) return malformed(knownId, 'INVALID_ARGUMENT', 'params must be a byte string')
      const request: { -readonly [K in keyof RequestEnvelope]: RequestEnvelope[K] } = { kind: Kind.Request, id: knownId, service, method, timeoutMs, metadata: metadata as Metadata | null, params }
      const window = item[8] as unknown
      if (window !== undefined && window !== null) {
        const n = asUint(window)
        if (n === undefined || n === 0) return malformed(knownId, 'INVALID_ARGUMENT', 'window must be null or a positive integer')
        request.window = Math.min(n, MAX_STREAM_CREDIT)
      }
      const key = item[9] as unknown
      if (key !== undefined && key !== null) {
        if (!isBytes(key) || key.length === 0 || key.length > MAX_CALL_KEY_BYTES) return malformed(knownId, 'INVALID_ARGUMENT', `key must be null or a byte string of 1 to ${MAX_CALL_KEY_BYTES} bytes`)
        request.key = key
      }
      return request
    }
    case Kind.Reply: {
      const result = item[3] as unknown
      if (!isBytes(result)) return malformed(knownId, 'INTERNAL', 'reply envelope must be [1, 1, id, bytes, ...]')
      return { kind: Kind.Reply, id: knownId, result }
    }
    case Kind.Error:
      return toError(knownId, item)
    case Kind.Cancel:
      return { kind: Kind.Cancel, id: knownId }
    case Kind.Ping:
      return { kind: Kind.Ping, id: knownId }
    case Kind.Pong:
      return { kind: Kind.Pong, id: knownId }
    case Kind.Item: {
      const payload = item[3] as unknown
      if (!isBytes(payload)) return malformed(knownId, 'INVALID_ARGUMENT', 'item envelope must be [1, 6, id, bytes, ...]')
      return { kind: Kind.Item, id: knownId, payload }
    }
    case Kind.Credit: {
      const n = asUint(item[3])
      if (n === undefined) return malformed(knownId, 'INVALID_ARGUMENT', 'credit envelope must be [1, 7, id, n, ...]')
      return { kind: Kind.Credit, id: knownId, n: Math.min(n, MAX_STREAM_CREDIT) }
    }
    case Kind.End:
      return { kind: Kind.End, id: knownId }
    case Kind.Auth: {
      const [, , , publicKey, proof] = item as unknown[]
      if (!isBytes(publicKey) || publicKey.length !== 32 || !isBytes(proof) || proof.length !== 32) {
        return malformed(knownId, 'INVALID_ARGUMENT', 'auth envelope must be [1, 9, 0, publicKey: 32 bytes, proof: 32 bytes]')
      }
      return { kind: Kind.Auth, id: knownId, publicKey, proof }
    }
    default: {
      const reason = `unknown message kind ${describe(kind)}`
      const unknownKind = asUint(kind)
      return unknownKind === undefined ? malformed(knownId, 'UNIMPLEMENTED', reason) : { ...malformed(knownId, 'UNIMPLEMENTED', reason), unknownKind }
    }
  }
}

/**
 * An ERROR with a readable id always ends its call: a code this peer does not know (a newer peer's),
 * or a code or message that is not text, or missing items, become `UNKNOWN` with a short message
 * saying what arrived, never the raw value (a hostile peer could send an array of thousands of items).
 */
function toError(id: number, item: unknown[]): ErrorEnvelope {
  const [, , , code, message] = item
  const details = item.length > 5 ? item[5] : null
  if (isStatusCode(code) && typeof message === 'string') return { kind: Kind.Error, id, code, message, details }
  const codeText = typeof code === 'string' ? capText(code) : `(code ${describe(code)})`
  const messageText = typeof message === 'string' ? capText(message) : `(message ${describe(message)})`
  return { kind: Kind.Error, id, code: 'UNKNOWN', message: `${codeText}: ${messageText}`, details }
}

/** Where the envelopes of a frame are, from {@link scanFrame}: read them with {@link readEnvelope}. */
export interface FrameScan {
  readonly kind: 'frame'
  /** End offset of each envelope: envelope i spans `ends[i - 1] ?? 0` to `ends[i]`. */
  readonly ends: readonly number[]
  /** Envelopes over {@link ENVELOPE_LIMITS}, by index, with the reason; they are answered, never decoded. */
  readonly overLimit: ReadonlyMap<number, CborProfileError>
}

/**
 * Finds the envelopes of a frame in one pass over its bytes, without decoding any, so a receiver can
 * read a large frame in chunks (see {@link readFrameInChunks}) instead of all in one event-loop turn.
 * A frame that is not profile CBOR yields one Malformed with no id. `limits` is the receiver's (its
 * `maxBytes` is the largest frame); the envelope limits apply on top, whatever it says.
 *
 * @example
 * ```ts
 * const scan = scanFrame(frame, limits)
 * if (scan.kind === 'malformed') return stats.malformed++
 * for (let i = 0; i < scan.ends.length; i++) handle(readEnvelope(frame, scan, i))
 * ```
 */
export function scanFrame(frame: Uint8Array, limits: CborLimits = DEFAULT_CBOR_LIMITS): FrameScan | Malformed {
  const scan = scanCborSequence(frame, envelopeCborLimits(limits))
  if (scan instanceof CborProfileError) return malformed(undefined, 'INVALID_ARGUMENT', `frame is not zrpc CBOR: ${scan.message}`)
  return { kind: 'frame', ends: scan.ends, overLimit: scan.overLimit }
}

/**
 * Decodes and checks envelope `index` of a scanned frame. One bad envelope does not affect its
 * neighbours. An envelope over the envelope limits is not decoded: its version, kind and id are read
 * from its first bytes, so it can still be answered (REQUEST, CANCEL: `INVALID_ARGUMENT`), end its
 * call (REPLY: `INTERNAL`; ERROR: an ERROR `UNKNOWN`) or be ignored (an unknown kind).
 *
 * @example
 * ```ts
 * const env = readEnvelope(frame, scan, 0)
 * ```
 */
export function readEnvelope(frame: Uint8Array, scan: FrameScan, index: number): Envelope | Malformed {
  const end = scan.ends[index]
  if (end === undefined) throw new RangeError(`frame has ${scan.ends.length} envelopes, no envelope ${index}`)
  const start = index === 0 ? 0 : scan.ends[index - 1]!
  const bytes = start === 0 && end === frame.length ? frame : frame.subarray(start, end)
  const over = scan.overLimit.get(index)
  return over === undefined ? readItem(bytes) : overLimit(bytes, over.message)
}

/** How much of a frame {@link readFrameInChunks} reads per chunk: one envelope at least, then up to both limits. */
export interface ChunkBudget {
  readonly maxEnvelopes: number
  /** Envelope bytes, which bound both the items to decode and the text to copy. */
  readonly maxBytes: number
}

/**
 * Reads a chunk in a few milliseconds at worst: 32 KiB holds at most 32 768 data items, about 15 ms at
 * the costliest decode rate measured (500 ns an item), and far less for envelopes of ordinary calls.
 */
export const DEFAULT_CHUNK_BUDGET: ChunkBudget = { maxEnvelopes: 256, maxBytes: 32 * 1024 }

/**
 * Reads a frame lazily, a chunk of envelopes at a time, so a receiver can yield to the event loop
 * between chunks: a 4 MiB frame can hold a million small envelopes, which take about a second to read.
 * Every envelope is returned, in order; a frame that is not profile CBOR yields one chunk of one
 * Malformed. Nothing is decoded until its chunk is asked for.
 *
 * @example
 * ```ts
 * let first = true
 * for (const chunk of readFrameInChunks(frame, limits)) {
 *   if (!first) await new Promise((resolve) => setImmediate(resolve))
 *   first = false
 *   for (const env of chunk) handle(env)
 * }
 * ```
 */
export function* readFrameInChunks(
  frame: Uint8Array,
  limits: CborLimits = DEFAULT_CBOR_LIMITS,
  budget: ChunkBudget = DEFAULT_CHUNK_BUDGET,
): Generator<Array<Envelope | Malformed>, void, undefined> {
  const scan = scanFrame(frame, limits)
  if (scan.kind === 'malformed') {
    yield [scan]
    return
  }
  const { ends } = scan
  let index = 0
  while (index < ends.length) {
    const chunkStart = index === 0 ? 0 : ends[index - 1]!
    const chunk: Array<Envelope | Malformed> = [readEnvelope(frame, scan, index++)]
    while (index < ends.length && chunk.length < budget.maxEnvelopes && ends[index]! - chunkStart <= budget.maxBytes) {
      chunk.push(readEnvelope(frame, scan, index++))
    }
    yield chunk
  }
}

/**
 * Reads every envelope in a frame at once. A frame that is not profile CBOR yields one Malformed with
 * no id; otherwise each envelope is checked on its own, so one bad envelope does not hide its
 * neighbours. For frames from the network prefer {@link readFrameInChunks}, which bounds the work
 * done per event-loop turn.
 *
 * @example
 * ```ts
 * for (const env of parseFrame(frame, limits)) handle(env)
 * ```
 */
export function parseFrame(frame: Uint8Array, limits: CborLimits = DEFAULT_CBOR_LIMITS): Array<Envelope | Malformed> {
  const scan = scanFrame(frame, limits)
  if (scan.kind === 'malformed') return [scan]
  const out: Array<Envelope | Malformed> = []
  for (let i = 0; i < scan.ends.length; i++) out.push(readEnvelope(frame, scan, i))
  return out
}

function readItem(bytes: Uint8Array): Envelope | Malformed {
  return readCommonEnvelope(bytes) ?? readEnvelopeWithCbor(bytes)
}

/**
 * Reads one scanned envelope with cbor-x, whatever its shape: the reference the hand reader
 * (envelope-read.ts) must agree with, and the reader of every shape it leaves out.
 *
 * @example
 * ```ts
 * const env = readEnvelopeWithCbor(frame.subarray(start, end))
 * ```
 */
export function readEnvelopeWithCbor(bytes: Uint8Array): Envelope | Malformed {
  try {
    return toEnvelope(decodeChecked(bytes))
  } catch (err) {
    // The scan accepted it, so this is a decoder limit we did not foresee: still the peer's fault.
    return malformed(undefined, 'INVALID_ARGUMENT', `undecodable envelope: ${(err as Error).message}`)
  }
}

/** What an envelope over the limits becomes, judged by its header alone. */
function overLimit(bytes: Uint8Array, why: string): Envelope | Malformed {
  const reason = `envelope over the protocol limits: ${why}`
  const header = peekHeader(bytes)
  if (header === undefined) return malformed(undefined, 'INVALID_ARGUMENT', reason)
  const { version, kind, id } = header
  if (version !== PROTOCOL_VERSION) return malformed(id, 'FAILED_PRECONDITION', `unsupported protocol version ${version}, this peer speaks ${PROTOCOL_VERSION}`)
  switch (kind) {
    case Kind.Request:
    case Kind.Cancel:
    case Kind.Credit:
    case Kind.End:
    case Kind.Auth:
      return malformed(id, 'INVALID_ARGUMENT', reason)
    case Kind.Reply:
    case Kind.Item:
      return malformed(id, 'INTERNAL', reason)
    case Kind.Error:
      return { kind: Kind.Error, id, code: 'UNKNOWN', message: `error ${reason}`, details: null }
    default:
      return { ...malformed(id, 'UNIMPLEMENTED', `unknown message kind ${kind}`), unknownKind: kind }
  }
}
