/**
 * Peer values in our error messages, bounded: a hostile peer's field can be a 4 MiB string or an
 * array of thousands of items, and a message built with `String(value)` would copy all of it into
 * our logs and, answered back, onto the wire.
 *
 * ```
 *   "NOT_FOUND"            -> text "NOT_FOUND"
 *   [1, 2, ... 3000 items] -> an array of 3000 items
 *   "xxxx... (100 000)"    -> the first 256 characters, then …
 * ```
 */

/** Most characters of a peer's text copied into a message we compose. */
export const MAX_PEER_TEXT = 256

/** A peer's text, cut to {@link MAX_PEER_TEXT} characters without splitting a surrogate pair. */
export function capText(text: string): string {
  if (text.length <= MAX_PEER_TEXT) return text
  const last = text.charCodeAt(MAX_PEER_TEXT - 1)
  const highSurrogate = last >= 0xd800 && last <= 0xdbff
  return `${text.slice(0, highSurrogate ? MAX_PEER_TEXT - 1 : MAX_PEER_TEXT)}…`
}

/** A short description of a value from a peer, bounded whatever its size, for error messages. */
export function describe(v: unknown): string {
  if (typeof v === 'string') return `text "${capText(v)}"`
  // CBOR integers are at most 64 bits (bignum tags are refused), so these stay short.
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v)
  if (v === null || v === undefined) return String(v)
  if (v instanceof Uint8Array) return `a byte string of ${v.length} bytes`
  if (Array.isArray(v)) return `an array of ${v.length} item${v.length === 1 ? '' : 's'}`
  return 'a map'
}
