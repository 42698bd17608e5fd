/**
 * zrpc's CBOR profile: what we write, and what we agree to read from an untrusted peer.
 *
 * cbor-x alone is not safe for bytes from the network: its size limits are process-global, it has no
 * nesting-depth limit, and it honours tags that build cyclic graphs (28/29), packed CBOR (51), Error
 * and RegExp objects (27) and record definitions whatever the options. So every frame is first walked
 * by {@link scanCbor}, a pure, allocation-free well-formedness check with per-call limits, and only
 * bytes that pass it reach cbor-x.
 *
 * The profile (stated in docs/protocol.md):
 * - definite lengths only; no indefinite-length strings, arrays or maps, no break byte
 * - simple values false, true, null, undefined; floats of 16, 32 and 64 bits; no other simple values
 * - map keys are text strings or integers
 * - tags only from an explicit allow list (empty by default)
 * - at most `maxDepth` nested arrays/maps and `maxBytes` in all; every declared length fits the bytes left
 */
import { Decoder, Encoder } from 'cbor-x'

/** Limits for reading CBOR from a peer. */
export interface CborLimits {
  /** Largest input accepted, in bytes. */
  readonly maxBytes: number
  /** Deepest nesting of arrays and maps accepted (the top-level item is depth 1). */
  readonly maxDepth: number
  /** Tag numbers a peer may use. Anything else is rejected. */
  readonly allowTags: ReadonlySet<number>
}

export const DEFAULT_CBOR_LIMITS: CborLimits = {
  maxBytes: 4 * 1024 * 1024,
  maxDepth: 32,
  allowTags: new Set(),
}

/** Why bytes were refused; a value, not a throw, so hot paths decide what to do with it. */
export class CborProfileError extends Error {
  override readonly name = 'CborProfileError'
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} at byte ${offset}`)
  }
}

// One encoder for the process: useRecords false keeps our frames plain CBOR any library can read;
// cbor-x appends each result to its slab (it never rewrites earlier results in this mode), which is
// what makes the buffer-ownership rule in docs/protocol.md hold.
// useTag259ForMaps is honoured by cbor-x but missing from its typings.
const encoderOptions = {
  useRecords: false,
  variableMapSize: true,
  useTag259ForMaps: false,
  tagUint8Array: false,
  largeBigIntToFloat: false,
}
const encoder = new Encoder(encoderOptions)

const decoder = new Decoder({ useRecords: false, mapsAsObjects: true })

/**
 * Encodes a value as plain CBOR.
 *
 * The result is a view into cbor-x's slab that no later encode overwrites; it is safe to hand to a
 * zeromq socket, and must not be written to afterwards.
 */
export function encodeCbor(value: unknown): Buffer {
  return encoder.encode(value)
}

/**
 * Checks that `buf` holds a CBOR sequence of items that all fit the profile, and returns the end
 * offset of each top-level item (a frame may carry several envelopes back to back, RFC 8742).
 */
export function scanCbor(buf: Uint8Array, limits: CborLimits = DEFAULT_CBOR_LIMITS): number[] | CborProfileError {
  if (buf.length > limits.maxBytes) return new CborProfileError(`input of ${buf.length} bytes exceeds ${limits.maxBytes}`, 0)
  if (buf.length === 0) return new CborProfileError('empty input', 0)
  const ends: number[] = []
  // pending[d] = items still to read in the container open at depth d; depth 0 is the top level.
  const pending: number[] = [1]
  // keyNext[d] tells whether the next item at depth d is a map key (for the key-type rule).
  const isMap: boolean[] = [false]
  const readCount: number[] = [0]
  let depth = 0
  let pos = 0
  const n = buf.length

  while (true) {
    // Close every finished container, recording the end of each top-level item.
    while (pending[depth] === 0) {
      if (depth === 0) {
        ends.push(pos)
        if (pos === n) return ends
        pending[0] = 1
        break
      }
      depth--
    }
    if (pos >= n) return new CborProfileError('truncated input', pos)
    const start = pos
    const initial = buf[pos++]!
    const major = initial >> 5
    const info = initial & 0x1f
    const inMapKey = isMap[depth] === true && readCount[depth]! % 2 === 0
    pending[depth]!--
    readCount[depth]!++
    if (inMapKey && major !== 0 && major !== 1 && major !== 3) {
      return new CborProfileError('map key must be a text string or an integer', start)
    }

    let arg: number
    if (info < 24) arg = info
    else if (info === 24) {
      if (pos + 1 > n) return new CborProfileError('truncated input', start)
      arg = buf[pos]!
      pos += 1
    } else if (info === 25) {
      if (pos + 2 > n) return new CborProfileError('truncated input', start)
      arg = (buf[pos]! << 8) | buf[pos + 1]!
      pos += 2
    } else if (info === 26) {
      if (pos + 4 > n) return new CborProfileError('truncated input', start)
      arg = ((buf[pos]! << 24) >>> 0) + ((buf[pos + 1]! << 16) | (buf[pos + 2]! << 8) | buf[pos + 3]!)
      pos += 4
    } else if (info === 27) {
      if (pos + 8 > n) return new CborProfileError('truncated input', start)
      const hi = ((buf[pos]! << 24) >>> 0) + ((buf[pos + 1]! << 16) | (buf[pos + 2]! << 8) | buf[pos + 3]!)
      const lo = ((buf[pos + 4]! << 24) >>> 0) + ((buf[pos + 5]! << 16) | (buf[pos + 6]! << 8) | buf[pos + 7]!)
      // Lengths and tag numbers past 2^53 can never fit; integers of any size are fine.
      arg = hi * 2 ** 32 + lo
      pos += 8
    } else if (info === 31) {
      return new CborProfileError('indefinite lengths are not accepted', start)
    } else {
      return new CborProfileError(`reserved additional information ${info}`, start)
    }

    switch (major) {
      case 0:
      case 1:
        break
      case 2:
      case 3:
        if (arg > n - pos) return new CborProfileError(`string length ${arg} exceeds the ${n - pos} bytes left`, start)
        pos += arg
        break
      case 4:
      case 5: {
        const items = major === 5 ? arg * 2 : arg
        // Every item takes at least one byte: a larger count is a lie, refuse before allocating.
        if (items > n - pos) return new CborProfileError(`container of ${arg} entries exceeds the ${n - pos} bytes left`, start)
        // The container itself sits at depth + 1, whether or not it holds anything.
        if (depth + 1 > limits.maxDepth) return new CborProfileError(`nesting deeper than ${limits.maxDepth}`, start)
        if (items > 0) {
          depth++
          pending[depth] = items
          isMap[depth] = major === 5
          readCount[depth] = 0
        }
        break
      }
      case 6:
        if (!limits.allowTags.has(arg)) return new CborProfileError(`tag ${arg} is not accepted`, start)
        // The tag content is one more item in the same container.
        pending[depth]!++
        readCount[depth]!--
        break
      default:
        // major 7: false, true, null, undefined and floats only.
        if (info < 20 || info === 24) return new CborProfileError(`simple value ${arg} is not accepted`, start)
        break
    }
  }
}

/**
 * Decodes one item that {@link scanCbor} has already accepted.
 * Never call it on unchecked bytes from a peer.
 */
export function decodeChecked(buf: Uint8Array): unknown {
  return decoder.decode(buf)
}

/** Scans, then decodes a single item; for payloads carried inside an envelope. */
export function decodeCbor(buf: Uint8Array, limits: CborLimits = DEFAULT_CBOR_LIMITS): unknown {
  const ends = scanCbor(buf, limits)
  if (ends instanceof CborProfileError) throw ends
  if (ends.length !== 1) throw new CborProfileError(`expected one item, found ${ends.length}`, ends[0] ?? 0)
  return decoder.decode(buf)
}
