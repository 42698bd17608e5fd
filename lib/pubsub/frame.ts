/**
 * The topic envelope, the second frame of every topic message. Pure: no sockets, no timers.
 *
 * ```
 *   frame 0  name 0x00 key 0x00                       the libzmq filter (topic.ts)
 *   frame 1  [1, publisher: bstr(8), seq: uint, data: bstr]
 *             │  │                   │          └ CBOR of the message, checked against the schema
 *             │  │                   └ 1, 2, 3 ... per stream (topic and key) of this publisher
 *             │  └ random per Publisher instance
 *             └ topic envelope version
 * ```
 * docs/protocol.md section 7 is the normative text.
 */
import { CborProfileError, decodeChecked, encodeCbor, scanCbor, type CborLimits } from '../codec/cbor.js'

export const TOPIC_VERSION = 1
/** Bytes in a publisher id. */
export const PUBLISHER_ID_BYTES = 8

/** A decoded topic envelope; `data` is still CBOR bytes. */
export interface TopicEnvelope {
  readonly publisher: Uint8Array
  readonly seq: number
  readonly data: Uint8Array
}

/** Writes the second frame. `data` is the CBOR of the message. */
export function encodeTopicEnvelope(publisher: Uint8Array, seq: number, data: Uint8Array): Buffer {
  return encodeCbor([TOPIC_VERSION, publisher, seq, data])
}

/** Reads the second frame; a string says why it was refused. */
export function decodeTopicEnvelope(frame: Uint8Array, limits: CborLimits): TopicEnvelope | string {
  const ends = scanCbor(frame, limits)
  if (ends instanceof CborProfileError) return `not zrpc CBOR: ${ends.message}`
  if (ends.length !== 1) return `expected one CBOR item, found ${ends.length}`
  let item: unknown
  try {
    item = decodeChecked(frame)
  } catch (err) {
    return `undecodable: ${(err as Error).message}`
  }
  if (!Array.isArray(item) || item.length < 4) return 'not an array of 4 or more items'
  const [version, publisher, seq, data] = item as unknown[]
  if (version !== TOPIC_VERSION) return `unsupported topic envelope version ${String(version)}`
  if (!(publisher instanceof Uint8Array) || publisher.length !== PUBLISHER_ID_BYTES) return 'publisher id is not 8 bytes'
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) return 'sequence number is not a positive integer'
  if (!(data instanceof Uint8Array)) return 'data is not a byte string'
  return { publisher, seq, data }
}
