/**
 * A listener: one ROUTER (a TransportSocket) bound to one or more endpoints, feeding a Dispatcher.
 *
 * ```
 *   ROUTER  <-  [ routing id ][ frame: CBOR sequence of REQUEST / CANCEL / CREDIT / PING envelopes ]
 *           ->  [ routing id ][ frame: CBOR sequence of REPLY / ERROR / ITEM / PONG envelopes ]
 *           <-  [ routing id ][ '' ]   peer connected / left (ROUTER_NOTIFY)
 * ```
 * Input from the network is untrusted: anything that cannot be read is answered with an error when
 * its id can be read, otherwise dropped and counted; the loop never stops for bad input.
 *
 * One frame may hold tens of thousands of envelopes. They are handled in turns of at most
 * 256 envelopes (the codec's chunk budget) or {@link MAX_TURN_MS}, yielding to the event loop between
 * turns, so replies leave and timers fire while a big frame is worked through; the next frame is
 * read only when this one is done (the socket's receive loop waits on the returned promise), so
 * what waits unread stays in libzmq's bounded queues.
 */
import { DEFAULT_CBOR_LIMITS, type CborLimits } from '../codec/cbor.js'
import { Kind, encodeError, encodePong, readFrameInChunks, type Envelope, type Malformed } from '../codec/envelope.js'
import { TransportSocket, type TransportCounters } from '../transport/socket.js'
import type { Dispatcher, PeerInfo, ReplyFn } from './dispatcher.js'

/** Longest stretch of one frame's work before yielding, in ms. */
export const MAX_TURN_MS = 2

/** Peers known before the listener first forgets idle ones. */
const MIN_PEERS_BEFORE_SWEEP = 1024

export interface ListenerOptions {
  readonly maxMessageSize: number
  readonly coalesce: boolean
  /** Bytes of replies waiting to be sent, all peers together (transport default 64 MiB). */
  readonly maxUnsentBytes?: number
  /** Bytes of replies kept for one peer that does not read, before its oldest are dropped (transport default 8 MiB). */
  readonly maxUnsentBytesPerPeer?: number
  /** libzmq security options (CURVE server, ZAP domain: transport/curve.ts). */
  readonly security?: Record<string, unknown>
  /** Checks a client's AUTH envelope: its key (Z85) if the proof holds (transport/security.ts). */
  readonly verifyAuth?: (publicKey: Uint8Array, proof: Uint8Array) => string | undefined
}

/** Input the listener could not serve, by reason. */
export interface ListenerCounters {
  /** Messages with other than [routing id, frame]. */
  badFrameCount: number
  /** Frames or envelopes that were not readable zrpc, answered when an id was known. */
  malformed: number
  /** Replies or errors sent to a server (they belong to clients). */
  unexpectedKind: number
  /** Outgoing frames over maxMessageSize, replaced by RESOURCE_EXHAUSTED. */
  oversizedReplies: number
  /** Envelopes left unhandled because their peer went away, or the server closed, while their frame was worked through. */
  unhandled: number
  /** AUTH envelopes whose proof did not hold (or that came to a server without CURVE): the connection stays anonymous. */
  badAuth: number
}

/** A listener's counters plus its socket's (received bytes, the send queue's drops and bytes). */
export interface ListenerStats extends ListenerCounters {
  /** Peers connected now. */
  peers: number
  readonly transport: TransportCounters
}

export class Listener {
  private readonly socket: TransportSocket
  private readonly limits: CborLimits
  private binding: Promise<unknown> = Promise.resolve()
  /** The peer whose frame is being worked through, and whether it has left meanwhile. */
  private current: { peer: Peer; gone: boolean } | undefined
  /**
   * Peers that sent something, by routing id bytes: each gets a number for the dispatcher's tables
   * and one routing-id Buffer that every reply to it carries (the send queue groups by that Buffer).
   */
  private readonly peers = new Map<string, Peer>()
  private lastPeerNumber = 0
  /** Peers known when idle ones are next forgotten (inproc peers leave without a notice). */
  private sweepAt = MIN_PEERS_BEFORE_SWEEP
  private readonly counters: ListenerCounters = { badFrameCount: 0, malformed: 0, unexpectedKind: 0, oversizedReplies: 0, unhandled: 0, badAuth: 0 }

  constructor(
    private readonly dispatcher: Dispatcher,
    private readonly options: ListenerOptions,
  ) {
    this.limits = { ...DEFAULT_CBOR_LIMITS, maxBytes: options.maxMessageSize }
    this.socket = new TransportSocket(
      {
        type: 'router',
        notifyPeers: true,
        maxMessageSize: options.maxMessageSize,
        coalesce: options.coalesce,
        ...(options.maxUnsentBytes !== undefined && { maxQueuedBytes: options.maxUnsentBytes }),
        ...(options.maxUnsentBytesPerPeer !== undefined && { maxParkedBytesPerPeer: options.maxUnsentBytesPerPeer }),
        ...(options.security !== undefined && { socketOptions: options.security }),
      },
      {
        onMessage: (frames) => this.onMessage(frames),
        onPeer: (routingId, event) => {
          if (event !== 'disconnected') return
          const key = routingId.toString('latin1')
          const peer = this.peers.get(key)
          if (peer === undefined) return
          this.peers.delete(key)
          if (this.current?.peer === peer) this.current.gone = true
          this.dispatcher.peerLeft(peer.number)
        },
      },
    )
  }

  get stats(): ListenerStats {
    const t = this.socket.counters
    return { ...this.counters, peers: this.socket.peerCount, transport: { ...t, send: { ...t.send } } }
  }

  /** Binds one more endpoint and returns it resolved (`tcp://127.0.0.1:*` becomes a real port). */
  bind(endpoint: string): Promise<string> {
    // zeromq.js refuses a second bind while one is in progress (EBUSY): one at a time.
    const bound = this.binding.then(() => this.socket.bind(endpoint))
    this.binding = bound.catch(() => undefined)
    return bound
  }

  /** Lets queued replies leave for up to `drainMs`, then closes the socket. */
  close(drainMs: number): Promise<void> {
    return this.socket.close(drainMs)
  }

  private onMessage(frames: Buffer[]): Promise<void> | undefined {
    const [from, frame] = frames
    if (frames.length !== 2 || from === undefined || frame === undefined) {
      this.counters.badFrameCount++
      return undefined
    }
    return this.onFrame(from, frame)
  }

  /** The peer `from` names, numbered on its first frame. */
  private peerOf(from: Buffer): Peer {
    const key = from.toString('latin1')
    let peer = this.peers.get(key)
    if (peer === undefined) {
      if (this.peers.size >= this.sweepAt) this.forgetIdlePeers()
      peer = { number: ++this.lastPeerNumber, routingId: from }
      this.peers.set(key, peer)
    }
    return peer
  }

  /**
   * Forgets peers that hold no calls, so the table stays within twice the peers that do (amortized
   * O(1) per new peer). One that comes back gets a new number: it held nothing that its old one could find.
   */
  private forgetIdlePeers(): void {
    for (const [key, peer] of this.peers) {
      if (peer === this.current?.peer || this.dispatcher.holds(peer.number)) continue
      this.peers.delete(key)
      this.dispatcher.peerLeft(peer.number)
    }
    this.sweepAt = Math.max(MIN_PEERS_BEFORE_SWEEP, 2 * this.peers.size)
  }

  private async onFrame(received: Buffer, frame: Buffer): Promise<void> {
    const peer = this.peerOf(received)
    const from = peer.routingId
    const reply: ReplyFn = (out, id) => {
      if (out.byteLength > this.options.maxMessageSize) {
        this.counters.oversizedReplies++
        out = encodeError(id, 'RESOURCE_EXHAUSTED', `reply of ${out.byteLength} bytes exceeds maxMessageSize ${this.options.maxMessageSize}`)
      }
      this.socket.push(out, from)
    }
    const current = { peer, gone: false }
    this.current = current
    try {
      // Envelopes are decoded a chunk at a time (the codec's budget: 256 envelopes or 32 KiB), and
      // the loop yields between chunks, and within one when it has run MAX_TURN_MS.
      let turnStarted = performance.now()
      let first = true
      for (const chunk of readFrameInChunks(frame, this.limits)) {
        if (!first) {
          await nextTurn()
          turnStarted = performance.now()
        }
        first = false
        for (let i = 0; i < chunk.length; i++) {
          if (i % 32 === 31 && performance.now() - turnStarted > MAX_TURN_MS) {
            await nextTurn()
            turnStarted = performance.now()
          }
          if (current.gone || this.socket.closed) {
            this.counters.unhandled += chunk.length - i
            return
          }
          this.onEnvelope(chunk[i]!, peer, from, reply)
        }
      }
    } finally {
      this.current = undefined
    }
  }

  private onEnvelope(env: Envelope | Malformed, from_: Peer, from: Buffer, reply: ReplyFn): void {
    const peer = from_.number
    switch (env.kind) {
      case 'malformed':
        this.counters.malformed++
        if (env.id !== undefined) this.socket.push(encodeError(env.id, env.code, env.reason), from)
        break
      case Kind.Request:
        this.dispatcher.handle(env, peer, reply, from_.info)
        break
      case Kind.Auth: {
        // The connection is bound to the key whose holder proved itself on it: its calls carry it (ctx.peer).
        const key = this.options.verifyAuth?.(env.publicKey, env.proof)
        if (key === undefined) this.counters.badAuth++
        else from_.info = { publicKey: key }
        break
      }
      case Kind.Cancel:
        this.dispatcher.cancel(peer, env.id)
        break
      case Kind.Credit:
        this.dispatcher.credit(peer, env.id, env.n)
        break
      case Kind.Item:
      case Kind.End:
        // Reserved for client streams, which this version does not serve: the call cannot go on.
        this.dispatcher.cancel(peer, env.id)
        this.socket.push(encodeError(env.id, 'UNIMPLEMENTED', 'this server does not take client streams'), from)
        break
      case Kind.Ping:
        // Answered here, not by the dispatcher: a busy server still says it is alive.
        this.socket.push(encodePong(env.id), from)
        break
      case Kind.Reply:
      case Kind.Error:
      case Kind.Pong:
        this.counters.unexpectedKind++
        break
    }
  }
}

interface Peer {
  readonly number: number
  readonly routingId: Buffer
  /** Who it is, once it has proved its CURVE key (AUTH). */
  info?: PeerInfo
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
