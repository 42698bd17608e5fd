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
import { CborProfileError, scanCbor, type CborLimits } from '../codec/cbor.js'
import { headArg as arg, headEnd as end, headSize, readHead, writeHead } from '../codec/cbor-heads.js'

export const TOPIC_VERSION = 1
/** Bytes in a publisher id. */
export const PUBLISHER_ID_BYTES = 8

/** A decoded topic envelope; `data` is still CBOR bytes. */
export interface TopicEnvelope {
  /** The 8 id bytes as a latin1 string: a cheap map key; `Buffer.from(id, 'latin1')` gives the bytes. */
  readonly publisher: string
  readonly seq: number
  readonly data: Buffer
}

// The envelope is written and read by hand: four fixed items around a payload that is already CBOR.
// On the hot path this halves the cbor-x calls per message; the bytes are plain CBOR all the same,
// and what is read has passed scanCbor first.

/** Writes the second frame: `[1, publisher, seq, data]`. `data` is the CBOR of the message. */
export function encodeTopicEnvelope(publisher: Uint8Array, seq: number, data: Uint8Array): Buffer {
  const size = 2 + headSize(publisher.length) + publisher.length + headSize(seq) + headSize(data.length) + data.length
  // A fresh buffer per message (never written again once sent: docs/protocol.md section 6).
  const buf = Buffer.allocUnsafe(size)
  buf[0] = 0x84
  buf[1] = TOPIC_VERSION
  let pos = writeHead(buf, 2, 2, publisher.length)
  buf.set(publisher, pos)
  pos = writeHead(buf, pos + publisher.length, 0, seq)
  pos = writeHead(buf, pos, 2, data.length)
  buf.set(data, pos)
  return buf
}

/** Reads the second frame; a string says why it was refused. Later versions may append items. */
export function decodeTopicEnvelope(frame: Buffer, limits: CborLimits): TopicEnvelope | string {
  const ends = scanCbor(frame, limits)
  if (ends instanceof CborProfileError) return `not zrpc CBOR: ${ends.message}`
  if (ends.length !== 1) return `expected one CBOR item, found ${ends.length}`
  if (readHead(frame, 0) !== 4 || arg() < 4) return 'not an array of 4 or more items'
  if (readHead(frame, end()) !== 0 || arg() !== TOPIC_VERSION) return 'unsupported topic envelope version'
  if (readHead(frame, end()) !== 2 || arg() !== PUBLISHER_ID_BYTES) return 'publisher id is not 8 bytes'
  const publisher = frame.toString('latin1', end(), end() + arg())
  if (readHead(frame, end() + arg()) !== 0 || arg() < 1 || !Number.isSafeInteger(arg())) return 'sequence number is not a positive integer'
  const seq = arg()
  if (readHead(frame, end()) !== 2) return 'data is not a byte string'
  return { publisher, seq, data: frame.subarray(end(), end() + arg()) }
}
