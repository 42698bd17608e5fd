/**
 * CBOR heads written and read by hand, for the envelope's fixed layout.
 *
 * ```
 *   head  = initial byte (major type << 5 | info) [ argument: 0, 1, 2, 4 or 8 bytes, big-endian ]
 *   info  < 24: the argument itself    24 / 25 / 26 / 27: a 1 / 2 / 4 / 8 byte argument follows
 *
 *   88 01 00 07 ...     array(8), 1 (version), 0 (REQUEST), 7 (id), ...
 * ```
 * Writing: REQUEST and REPLY are two of the four encodes of every call, and a fixed layout written
 * by hand measured 1.5-3x faster than cbor-x. Reading: {@link peekHeader}, for envelopes too large
 * to decode; the common envelopes are read by hand in envelope-read.ts.
 */

/** Bytes of a CBOR head carrying `n`. */
export function headSize(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < 0x100000000 ? 5 : 9
}

/** Writes the shortest CBOR head of major type `major` carrying `n`; returns the next position. */
export function writeHead(out: Buffer, pos: number, major: number, n: number): number {
  const type = major << 5
  if (n < 24) {
    out[pos] = type | n
    return pos + 1
  }
  if (n < 0x100) {
    out[pos] = type | 24
    out[pos + 1] = n
    return pos + 2
  }
  if (n < 0x10000) {
    out[pos] = type | 25
    out.writeUInt16BE(n, pos + 1)
    return pos + 3
  }
  if (n < 0x100000000) {
    out[pos] = type | 26
    out.writeUInt32BE(n, pos + 1)
    return pos + 5
  }
  out[pos] = type | 27
  out.writeUInt32BE(Math.floor(n / 0x100000000), pos + 1)
  out.writeUInt32BE(n >>> 0, pos + 5)
  return pos + 9
}

/** Writes text of `bytes` UTF-8 bytes; returns the next position. */
export function writeText(out: Buffer, pos: number, text: string, bytes: number): number {
  // Service and method names are short and nearly always ASCII: a plain loop avoids a native call.
  if (bytes === text.length && bytes <= 32) {
    for (let i = 0; i < bytes; i++) out[pos + i] = text.charCodeAt(i)
    return pos + bytes
  }
  return pos + out.write(text, pos, 'utf8')
}

/** The first three items of an envelope, each an unsigned integer that fits a JavaScript number. */
export interface EnvelopeHeader {
  readonly version: number
  readonly kind: number
  readonly id: number
}

/**
 * Reads `[version, kind, id, ...]` from the heads at the start of an envelope, without decoding the
 * rest. Undefined unless the bytes start with an array of at least 3 items whose first three are
 * unsigned integers up to 2^53 - 1. The bytes must have passed the profile scan.
 *
 * @example
 * ```ts
 * peekHeader(Buffer.from('83010307', 'hex')) // { version: 1, kind: 3, id: 7 }
 * ```
 */
export function peekHeader(bytes: Uint8Array): EnvelopeHeader | undefined {
  if (readHead(bytes, 0) !== 4 || headArg < 3) return undefined
  const values: number[] = []
  let pos = headEnd
  for (let i = 0; i < 3; i++) {
    if (readHead(bytes, pos) !== 0 || headArg > Number.MAX_SAFE_INTEGER) return undefined
    values.push(headArg)
    pos = headEnd
  }
  const [version = 0, kind = 0, id = 0] = values
  return { version, kind, id }
}

// readHead's results besides the major type: module state instead of an object per head.
let headArg = 0
let headEnd = 0

/** Reads the head at `pos`: returns its major type (or -1), and sets headArg and headEnd. */
function readHead(buf: Uint8Array, pos: number): number {
  const initial = buf[pos]
  if (initial === undefined) return -1
  const info = initial & 0x1f
  const size = info < 24 ? 0 : info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : -1
  if (size < 0 || pos + 1 + size > buf.length) return -1
  let arg = size === 0 ? info : 0
  for (let i = 1; i <= size; i++) arg = arg * 256 + buf[pos + i]!
  headArg = arg
  headEnd = pos + 1 + size
  return initial >> 5
}
