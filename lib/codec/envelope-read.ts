/**
 * The common envelopes read by hand, straight from the frame bytes: no cbor-x, no DataView, no
 * intermediate array, and params or result as a view into the frame (as cbor-x gives them).
 *
 * ```
 *   REQUEST  88 01 00 id service method timeoutMs (f6 | small map of ASCII text) params:bstr
 *            89|8a ...                  params:bstr (f6 | window) [f6 | key:bstr]
 *   REPLY    84 01 01 id result:bstr
 *   ERROR    85|86 01 02 id code message [f6]        code a known status, code and message ASCII
 *   CANCEL   83 01 03 id
 *   ITEM     84 01 06 id payload:bstr
 *   CREDIT   84 01 07 id n
 * ```
 * Anything else (another version, extra items, non-ASCII text, details, large metadata, an id past
 * 2^53 - 1) returns undefined and is read by cbor-x as before: this reader only takes shapes whose
 * result it can give exactly as `toEnvelope(decode(bytes))` would (test/unit/codec-envelope-read.test.ts
 * checks that on generated and mutated envelopes). The bytes must have passed the profile scan, which
 * guarantees every head and string read here lies inside them.
 */
import { isStatusCode } from '../errors.js'
import { MAX_CALL_KEY_BYTES, MAX_STREAM_CREDIT, checkMetadata } from './envelope-limits.js'
import type { Envelope, Metadata, RequestEnvelope } from './envelope.js'

const MAX_ID = Number.MAX_SAFE_INTEGER
/** Metadata entries read by hand; more go to cbor-x. */
const MAX_FAST_METADATA = 16
/** Text read with String.fromCharCode and cached; longer text is sliced by Buffer. */
const SHORT_TEXT = 48

// The reader's position and the last head's argument: module state instead of an object per head.
let pos = 0
let arg = 0

/**
 * Reads the head at `pos`: returns its major type, sets `arg` (exact up to 2^53) and moves `pos` past it.
 * Not cbor-heads.ts's readHead: the bytes have passed the scan, so this one skips the bounds checks
 * and keeps its own cursor, on the path every call takes.
 */
function head(b: Uint8Array): number {
  const initial = b[pos++]!
  const info = initial & 0x1f
  if (info < 24) arg = info
  else if (info === 24) arg = b[pos++]!
  else if (info === 25) {
    arg = (b[pos]! << 8) | b[pos + 1]!
    pos += 2
  } else if (info === 26) {
    arg = ((b[pos]! << 24) >>> 0) + ((b[pos + 1]! << 16) | (b[pos + 2]! << 8) | b[pos + 3]!)
    pos += 4
  } else if (info === 27) {
    const hi = ((b[pos]! << 24) >>> 0) + ((b[pos + 1]! << 16) | (b[pos + 2]! << 8) | b[pos + 3]!)
    const lo = ((b[pos + 4]! << 24) >>> 0) + ((b[pos + 5]! << 16) | (b[pos + 6]! << 8) | b[pos + 7]!)
    // Above 2^53 the sum rounds, but stays above MAX_ID, which is all callers check.
    arg = hi * 2 ** 32 + lo
    pos += 8
  } else return -1
  return initial >> 5
}

/** An unsigned integer up to MAX_ID at `pos`, or -1. */
function uint(b: Uint8Array): number {
  return head(b) === 0 && arg <= MAX_ID ? arg : -1
}

// Service, method, codes and metadata keys repeat from call to call: a small cache returns the same
// string without allocating, and the same string object keeps its hash for the Maps it is looked up in.
const textCache: string[] = new Array<string>(64).fill('')

/** ASCII text at `pos`, or undefined (not text, or not ASCII: cbor-x's UTF-8 reading is the reference). */
function text(b: Uint8Array): string | undefined {
  if (head(b) !== 3) return undefined
  const start = pos
  const end = start + arg
  pos = end
  if (arg > SHORT_TEXT) {
    for (let i = start; i < end; i++) if (b[i]! >= 0x80) return undefined
    return Buffer.from(b.buffer, b.byteOffset + start, arg).toString('latin1')
  }
  if (arg === 0) return ''
  const slot = (arg * 7 + b[start]! * 3 + b[end - 1]!) & 63
  const cached = textCache[slot]!
  if (cached.length === arg) {
    let same = true
    for (let i = 0; i < arg; i++) {
      if (cached.charCodeAt(i) !== b[start + i]) {
        same = false
        break
      }
    }
    if (same) return cached
  }
  let s = ''
  for (let i = start; i < end; i++) {
    const c = b[i]!
    if (c >= 0x80) return undefined
    s += String.fromCharCode(c)
  }
  textCache[slot] = s
  return s
}

/** Null, or a map of at most MAX_FAST_METADATA ASCII text entries within the limits; else undefined. */
function metadata(b: Uint8Array): Metadata | null | undefined {
  if (b[pos] === 0xf6) {
    pos++
    return null
  }
  if (head(b) !== 5 || arg > MAX_FAST_METADATA) return undefined
  const entries = arg
  const out: Metadata = {}
  for (let i = 0; i < entries; i++) {
    const key = text(b)
    // cbor-x renames this key (prototype pollution): leave that to it.
    if (key === undefined || key === '__proto__') return undefined
    const value = text(b)
    if (value === undefined) return undefined
    out[key] = value
  }
  return checkMetadata(out) === undefined ? out : undefined
}

/** A byte string at `pos` as a view into `b`, or undefined. */
function bytes(b: Uint8Array): Uint8Array | undefined {
  if (head(b) !== 2) return undefined
  const start = pos
  pos += arg
  return b.subarray(start, pos)
}

/** A REQUEST's window (item 8) and key (item 9), when they are null or in range; else undefined for cbor-x. */
function withExtras(b: Uint8Array, count: number, request: Writable<RequestEnvelope>): RequestEnvelope | undefined {
  if (b[pos] === 0xf6) pos++
  else {
    const window = uint(b)
    if (window <= 0 || window > MAX_STREAM_CREDIT) return undefined
    request.window = window
  }
  if (count === 10) {
    if (b[pos] === 0xf6) return request
    const key = bytes(b)
    if (key === undefined || key.length === 0 || key.length > MAX_CALL_KEY_BYTES) return undefined
    request.key = key
  }
  return request
}

type Writable<T> = { -readonly [K in keyof T]: T[K] }

/**
 * Reads one envelope of a common shape, or returns undefined for cbor-x to read. `b` holds exactly
 * one item that passed the profile scan.
 *
 * @example
 * ```ts
 * const env = readCommonEnvelope(bytes) ?? toEnvelope(decodeChecked(bytes))
 * ```
 */
export function readCommonEnvelope(b: Uint8Array): Envelope | undefined {
  pos = 0
  if (head(b) !== 4) return undefined
  const count = arg
  // Version 1 and a kind of 0..3 or 6..7, each in its one-byte head.
  if (count < 3 || b[pos] !== 0x01) return undefined
  const kind = b[pos + 1]!
  pos += 2
  if (kind > 7 || kind === 4 || kind === 5) return undefined
  const id = uint(b)
  if (id < 0) return undefined
  switch (kind) {
    case 0: {
      if (count < 8 || count > 10) return undefined
      const service = text(b)
      if (service === undefined) return undefined
      const method = text(b)
      if (method === undefined) return undefined
      const timeoutMs = uint(b)
      if (timeoutMs < 0) return undefined
      const meta = metadata(b)
      if (meta === undefined) return undefined
      const params = bytes(b)
      if (params === undefined) return undefined
      if (count === 8) return { kind: 0, id, service, method, timeoutMs, metadata: meta, params }
      return withExtras(b, count, { kind: 0, id, service, method, timeoutMs, metadata: meta, params })
    }
    case 1: {
      if (count !== 4) return undefined
      const result = bytes(b)
      return result === undefined ? undefined : { kind: 1, id, result }
    }
    case 2: {
      if (count !== 5 && count !== 6) return undefined
      const code = text(b)
      if (code === undefined || !isStatusCode(code)) return undefined
      const message = text(b)
      if (message === undefined || (count === 6 && b[pos] !== 0xf6)) return undefined
      return { kind: 2, id, code, message, details: null }
    }
    case 6: {
      if (count !== 4) return undefined
      const payload = bytes(b)
      return payload === undefined ? undefined : { kind: 6, id, payload }
    }
    case 7: {
      if (count !== 4) return undefined
      const n = uint(b)
      return n < 0 || n > MAX_STREAM_CREDIT ? undefined : { kind: 7, id, n }
    }
    default:
      return count === 3 ? { kind: 3, id } : undefined
  }
}
