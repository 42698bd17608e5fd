/** Raw ZeroMQ peers for the server suites: hand-built frames in, every envelope the server sends collected. */
import { Dealer } from 'zeromq'
import { encodeCbor } from '../../lib/codec/cbor.js'
import { encodeRequest, parseFrame, type Envelope, type Malformed } from '../../lib/codec/envelope.js'

export interface RawPeer {
  readonly socket: Dealer
  /** Every envelope received so far, in order. */
  readonly received: Array<Envelope | Malformed>
  stop(): void
}

/** A DEALER connected to `endpoint` that reads and parses everything the server sends it. */
export function rawPeer(endpoint: string): RawPeer {
  const socket = new Dealer({ linger: 0 })
  socket.connect(endpoint)
  const received: Array<Envelope | Malformed> = []
  void (async () => {
    try {
      for await (const [frame] of socket) if (frame !== undefined) received.push(...parseFrame(frame))
    } catch {
      // the socket was closed
    }
  })()
  return { socket, received, stop: () => socket.close() }
}

/** A REQUEST for calc.slow. */
export const slowRequest = (id: number, ms: number, timeoutMs = 10_000): Buffer => encodeRequest(id, 'calc', 'slow', timeoutMs, null, encodeCbor({ ms }))

/** One frame holding `n` small REQUESTs for calc.add, with ids 1..n. */
export function frameOfRequests(n: number): Buffer {
  const body = encodeCbor({ a: 1, b: 2 })
  return Buffer.concat(Array.from({ length: n }, (_, i) => encodeRequest(i + 1, 'calc', 'add', 10_000, null, body)))
}
