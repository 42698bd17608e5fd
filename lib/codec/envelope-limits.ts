/**
 * The protocol's size limits for envelopes and frames: what every zrpc/1 peer writes within and
 * accepts, whatever its own configuration. docs/protocol.md states each one and what a receiver does
 * past it.
 *
 * ```
 *   frame      [ envelope ][ envelope ] ...        joined only up to MAX_JOINED_FRAME_BYTES
 *   envelope   [1, 0, id, service, method, timeoutMs, metadata, params]
 *               `------------ at most ENVELOPE_LIMITS.maxItems data items ------------'
 *                                                  `-- at most 64 entries, 8 KiB of text
 *   params / result: one byte string (one item here), with its own payload limits (cbor.ts)
 * ```
 */
import type { CborLimits } from './cbor.js'

/** Limits on one envelope, apart from the payload bytes it carries. */
export interface EnvelopeLimits {
  /**
   * Data items in one envelope (every CBOR head, as `CborLimits.maxItems`); a params or result byte
   * string is one item, whatever it holds.
   */
  readonly maxItems: number
  /** Entries in a REQUEST's metadata. */
  readonly maxMetadataEntries: number
  /** UTF-8 bytes of a REQUEST's metadata keys and values together. */
  readonly maxMetadataTextBytes: number
}

/**
 * The envelope limits of zrpc/1. An envelope is a header around payload bytes: a few items, plus the
 * details of an ERROR (validation issues: up to 20 of a few items each). 4096 items take at most
 * about 2 ms to decode at the costliest rate measured for cbor-x (300-500 ns an item). Metadata is
 * bounded like gRPC's 8 KiB header limit, since every hop copies it.
 *
 * @example
 * ```ts
 * const limits = { ...DEFAULT_CBOR_LIMITS, maxItems: ENVELOPE_LIMITS.maxItems }
 * ```
 */
export const ENVELOPE_LIMITS: EnvelopeLimits = {
  maxItems: 4096,
  maxMetadataEntries: 64,
  maxMetadataTextBytes: 8 * 1024,
}

/** Bytes of a REQUEST's call key (item 9): enough for a 128-bit nonce and a counter, bounded for the server's record. */
export const MAX_CALL_KEY_BYTES = 64

/**
 * Credit a stream's sender may hold at once: a REQUEST's window, and what CREDITs add to it, count up
 * to this; more is not an error, the excess is ignored (a receiver cannot gain by granting more).
 */
export const MAX_STREAM_CREDIT = 65_536

/**
 * Why metadata would be refused by a receiver, or undefined when it is acceptable: it must be null or
 * a map of text to text within {@link ENVELOPE_LIMITS} (64 entries, 8 KiB of text). A receiver
 * answers a REQUEST with other metadata `INVALID_ARGUMENT`; a sender can check before sending.
 *
 * @example
 * ```ts
 * const problem = checkMetadata(options.metadata ?? null)
 * if (problem !== undefined) throw new RpcError('INVALID_ARGUMENT', problem)
 * ```
 */
export function checkMetadata(metadata: unknown): string | undefined {
  if (metadata === null) return undefined
  if (typeof metadata !== 'object' || Array.isArray(metadata) || metadata instanceof Uint8Array) return MISTYPED_METADATA
  const fields = metadata as Record<string, unknown>
  let entries = 0
  let units = 0
  for (const key in fields) {
    const value = fields[key]
    if (typeof value !== 'string') return MISTYPED_METADATA
    entries++
    units += key.length + value.length
  }
  const { maxMetadataEntries, maxMetadataTextBytes } = ENVELOPE_LIMITS
  if (entries > maxMetadataEntries) return `metadata has ${entries} entries, more than ${maxMetadataEntries}`
  // A UTF-16 unit takes 1 to 3 bytes of UTF-8: count bytes (a native call per string) only when that
  // bound cannot decide, which for the short metadata of ordinary calls is never.
  if (units * 3 <= maxMetadataTextBytes) return undefined
  let bytes = 0
  for (const key in fields) bytes += Buffer.byteLength(key) + Buffer.byteLength(fields[key] as string)
  return bytes > maxMetadataTextBytes ? `metadata holds ${bytes} bytes of text, more than ${maxMetadataTextBytes}` : undefined
}

const MISTYPED_METADATA = 'metadata must be a map of text to text, or null'

/**
 * Largest frame a sender may build by joining envelopes (a CBOR sequence, section 1 of
 * docs/protocol.md). A single envelope larger than this travels alone, in a frame of its own.
 * Every peer accepts frames of this size (see {@link MIN_MAX_MESSAGE_SIZE}), so joining never turns
 * envelopes that each fit the receiver into a frame that does not.
 *
 * @example
 * ```ts
 * new SendQueue(socket, { maxFrameBytes: Math.min(MAX_JOINED_FRAME_BYTES, maxMessageSize) })
 * ```
 */
export const MAX_JOINED_FRAME_BYTES = 64 * 1024

/**
 * Smallest `maxMessageSize` a zrpc peer may be configured with: at least {@link MAX_JOINED_FRAME_BYTES},
 * so that any joined frame fits every peer.
 *
 * @example
 * ```ts
 * if (maxMessageSize < MIN_MAX_MESSAGE_SIZE) throw new RangeError(`maxMessageSize must be at least ${MIN_MAX_MESSAGE_SIZE}`)
 * ```
 */
export const MIN_MAX_MESSAGE_SIZE = MAX_JOINED_FRAME_BYTES

/** The CBOR limits for scanning a frame of envelopes: the caller's, with the item limit no looser than the envelope's. */
export function envelopeCborLimits(limits: CborLimits): CborLimits {
  // A receiver passes the same (readonly) limits object with every frame: keep the last answer.
  if (cached?.from !== limits) {
    cached = { from: limits, to: { ...limits, maxItems: Math.min(limits.maxItems ?? ENVELOPE_LIMITS.maxItems, ENVELOPE_LIMITS.maxItems) } }
  }
  return cached.to
}

let cached: { readonly from: CborLimits; readonly to: CborLimits } | undefined
