/**
 * REQUEST (without metadata) and REPLY written by hand at a position of a buffer the caller owns, so
 * a sender can join envelopes into one frame without a Buffer per envelope. The bytes are the ones
 * cbor-x writes for the same arrays (test/unit/envelope.test.ts checks both at every head size).
 *
 * ```
 *   REQUEST  88 01 00 id service:tstr method:tstr timeoutMs f6 params:bstr
 *            89 ... params:bstr window                 a stream's REQUEST
 *            8a ... params:bstr (window | f6) key:bstr  with a call key
 *   REPLY    84 01 01 id result:bstr
 *   ITEM     84 01 06 id payload:bstr
 * ```
 */
import { headSize, writeHead } from './cbor-heads.js'
import { writeText } from './envelope-heads.js'

// Version 1; kinds REQUEST 0 and REPLY 1 (envelope.ts, docs/protocol.md).
const VERSION = 1
const REQUEST = 0
const REPLY = 1
const ITEM = 6

/**
 * Bytes of a REQUEST without metadata, for {@link writeRequest}: `serviceBytes` and `methodBytes`
 * are the UTF-8 lengths (`Buffer.byteLength`).
 *
 * @example
 * ```ts
 * const size = requestSize(id, Buffer.byteLength(service), Buffer.byteLength(method), timeoutMs, params.length)
 * ```
 */
export function requestSize(id: number, serviceBytes: number, methodBytes: number, timeoutMs: number, paramsLength: number, window?: number, key?: Uint8Array): number {
  const size = 3 + headSize(id) + headSize(serviceBytes) + serviceBytes + headSize(methodBytes) + methodBytes + headSize(timeoutMs) + 1 + headSize(paramsLength) + paramsLength
  if (key !== undefined) return size + (window === undefined ? 1 : headSize(window)) + headSize(key.length) + key.length
  return window === undefined ? size : size + headSize(window)
}

/**
 * Writes a REQUEST without metadata at `pos` of `out`, the bytes {@link encodeRequest} returns, and
 * returns the position after it: for a sender that joins envelopes into one frame buffer it owns,
 * without a Buffer per envelope. `out` must have {@link requestSize} bytes free at `pos`.
 *
 * @example
 * ```ts
 * pos = writeRequest(frame, pos, id, service, Buffer.byteLength(service), method, Buffer.byteLength(method), timeoutMs, params)
 * ```
 */
export function writeRequest(
  out: Buffer,
  pos: number,
  id: number,
  service: string,
  serviceBytes: number,
  method: string,
  methodBytes: number,
  timeoutMs: number,
  params: Uint8Array,
  window?: number,
  key?: Uint8Array,
): number {
  out[pos] = key !== undefined ? 0x8a : window !== undefined ? 0x89 : 0x88
  out[pos + 1] = VERSION
  out[pos + 2] = REQUEST
  let at = writeHead(out, pos + 3, 0, id)
  at = writeText(out, writeHead(out, at, 3, serviceBytes), service, serviceBytes)
  at = writeText(out, writeHead(out, at, 3, methodBytes), method, methodBytes)
  at = writeHead(out, at, 0, timeoutMs)
  out[at++] = 0xf6
  at = writeHead(out, at, 2, params.length)
  out.set(params, at)
  at += params.length
  if (window !== undefined) at = writeHead(out, at, 0, window)
  else if (key !== undefined) out[at++] = 0xf6
  if (key !== undefined) {
    at = writeHead(out, at, 2, key.length)
    out.set(key, at)
    at += key.length
  }
  return at
}

/**
 * Bytes of a REPLY, for {@link writeReply}.
 *
 * @example
 * ```ts
 * const size = replySize(id, result.length)
 * ```
 */
export function replySize(id: number, resultLength: number): number {
  return 3 + headSize(id) + headSize(resultLength) + resultLength
}

/**
 * Writes a REPLY at `pos` of `out`, the bytes {@link encodeReply} returns, and returns the position
 * after it; `out` must have {@link replySize} bytes free at `pos`.
 *
 * @example
 * ```ts
 * pos = writeReply(frame, pos, id, result)
 * ```
 */
export function writeReply(out: Buffer, pos: number, id: number, result: Uint8Array): number {
  out[pos] = 0x84
  out[pos + 1] = VERSION
  out[pos + 2] = REPLY
  const at = writeHead(out, writeHead(out, pos + 3, 0, id), 2, result.length)
  out.set(result, at)
  return at + result.length
}

/**
 * A REPLY written straight into the frame that carries it (the shape of the send queue's LazyBody),
 * so a server answering many calls in one frame makes no Buffer and no copy per reply.
 *
 * @example
 * ```ts
 * socket.push(new LazyReply(id, result), peer)
 * ```
 */
export class LazyReply {
  readonly byteLength: number

  constructor(
    readonly id: number,
    readonly result: Uint8Array,
  ) {
    this.byteLength = replySize(id, result.length)
  }

  writeTo(out: Buffer, pos: number): number {
    return writeReply(out, pos, this.id, this.result)
  }
}

/**
 * An ITEM of a stream written straight into the frame that carries it, as {@link LazyReply}: the
 * bytes cbor-x writes for `[1, 6, id, payload]`.
 *
 * @example
 * ```ts
 * socket.push(new LazyItem(id, payload), peer)
 * ```
 */
export class LazyItem {
  readonly byteLength: number

  constructor(
    readonly id: number,
    readonly payload: Uint8Array,
  ) {
    this.byteLength = replySize(id, payload.length)
  }

  writeTo(out: Buffer, pos: number): number {
    const end = writeReply(out, pos, this.id, this.payload)
    out[pos + 2] = ITEM
    return end
  }
}
