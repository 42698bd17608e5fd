/**
 * CBOR heads written and read by hand: the one place for the fixed layouts zrpc writes itself (the
 * call envelope, the topic envelope) and for peeking at heads without decoding.
 *
 * ```
 *   head  = initial byte (major type << 5 | info) [ argument: 0, 1, 2, 4 or 8 bytes, big-endian ]
 *   info  < 24: the argument itself    24 / 25 / 26 / 27: a 1 / 2 / 4 / 8 byte argument follows
 * ```
 * Pure: no sockets, no allocation per head.
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

// readHead's results besides the major type: module state instead of an object per head, read
// through calls (not the variables) so the compiler does not carry a comparison's narrowing past
// the next readHead().
let lastArg = 0
let lastEnd = 0

/** The argument of the head {@link readHead} read last (exact up to 2^53). */
export const headArg = (): number => lastArg
/** Where the head {@link readHead} read last ends: the start of its content. */
export const headEnd = (): number => lastEnd

/**
 * Reads the head at `pos`: returns its major type, or -1 if it does not fit in `buf` or uses a
 * reserved size; sets {@link headArg} and {@link headEnd}.
 */
export function readHead(buf: Uint8Array, pos: number): number {
  const initial = buf[pos]
  if (initial === undefined) return -1
  const info = initial & 0x1f
  const size = info < 24 ? 0 : info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : -1
  if (size < 0 || pos + 1 + size > buf.length) return -1
  let arg = size === 0 ? info : 0
  // Above 2^53 the sum rounds, but stays at or above 2^53: callers refuse unsafe integers.
  for (let i = 1; i <= size; i++) arg = arg * 256 + buf[pos + i]!
  lastArg = arg
  lastEnd = pos + 1 + size
  return initial >> 5
}
