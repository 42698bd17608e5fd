/**
 * The envelope's fixed layout, written and read by hand with the heads of cbor-heads.ts.
 *
 * ```
 *   88 01 00 07 ...     array(8), 1 (version), 0 (REQUEST), 7 (id), ...
 * ```
 * Writing: REQUEST and REPLY are two of the four encodes of every call, and a fixed layout written
 * by hand measured 1.5-3x faster than cbor-x. Reading: {@link peekHeader}, for envelopes too large
 * to decode; the common envelopes are read by hand in envelope-read.ts.
 */
import { headArg, headEnd, readHead } from './cbor-heads.js'

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
  if (readHead(bytes, 0) !== 4 || headArg() < 3) return undefined
  const values: number[] = []
  let pos = headEnd()
  for (let i = 0; i < 3; i++) {
    if (readHead(bytes, pos) !== 0 || headArg() > Number.MAX_SAFE_INTEGER) return undefined
    values.push(headArg())
    pos = headEnd()
  }
  const [version = 0, kind = 0, id = 0] = values
  return { version, kind, id }
}

