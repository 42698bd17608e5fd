/**
 * A broker worker: one Majordomo (7/MDP) worker on its own DEALER (a TransportSocket) for one
 * service, taking up to `credit` requests at once and feeding them to a Dispatcher.
 *
 * ```
 *   worker  ->  [ '' ][ 'MDPW01' ][ 0x01 ][ service ][ { credit: N } ]       READY (per socket)
 *   broker  ->  [ '' ][ 'MDPW01' ][ 0x02 ][ client ][ '' ][ REQUEST / CANCEL / CREDIT... ]
 *   worker  ->  [ '' ][ 'MDPW01' ][ 0x03 ][ client ][ '' ][ REPLY / ERROR / ITEM... ]
 *   either  <>  [ '' ][ 'MDPW01' ][ 0x04 ]                                   HEARTBEAT (each beat answered)
 *   either  <>  [ '' ][ 'MDPW01' ][ 0x05 ]                                   DISCONNECT
 * ```
 * The credit in READY is zrpc's extension (docs/protocol.md, "credit workers"): a zrpc broker sends
 * such a worker up to N requests, several of one client per message, and this worker answers each
 * envelope once, the answers of one turn for one message joined. A plain 7/MDP broker ignores the
 * frame and sends one request at a time, which this worker answers with exactly one REPLY. Every
 * request is answered, even one the dispatcher ends without a reply (its deadline passed): the broker
 * would otherwise count its credit used for ever. After the broker's silence (see mdp-heartbeat.ts)
 * or a DISCONNECT it starts over on a fresh socket with READY.
 */
import { Command, parseWorkerMessage } from '../../patterns/majordomo-protocol.js'
import { DEFAULT_CBOR_LIMITS, type CborLimits } from '../codec/cbor.js'
import { Kind, encodeError, readEnvelope, scanFrame } from '../codec/envelope.js'
import type { Body } from '../transport/send-queue.js'
import { TransportSocket } from '../transport/socket.js'
import { DeadlineWheel } from './deadline-timer.js'
import type { Dispatcher, PeerInfo } from './dispatcher.js'
import { z85Encode } from '../transport/curve.js'
import { BrokerBeats } from './mdp-heartbeat.js'
import { addressedHead, commandFrames, readyFrames } from './mdp-frames.js'

export interface BrokerWorkerOptions {
  readonly maxMessageSize: number
  /** This worker's heartbeat interval; it also answers each of the broker's beats, so the two need not match. */
  readonly heartbeatMs: number
  readonly liveness: number
  /** Requests this worker takes at once (its credit, declared in READY). */
  readonly credit: number
  /** Called once if the broker's heartbeat interval differs from `heartbeatMs`, with what to change. */
  readonly onWarning?: (message: string) => void
  /** libzmq security options toward the broker (CURVE client: transport/curve.ts). */
  readonly security?: Record<string, unknown>
}

/** What a worker counts. */
export interface BrokerWorkerStats {
  /** Envelopes that were not readable REQUESTs, answered with an error. */
  malformed: number
  /** Requests held now (at most the credit). */
  holding: number
  /** READYs sent: 1, plus one per reconnect. */
  connects: number
  /** The broker's heartbeat interval as observed, in ms (0 until seen). */
  brokerHeartbeatMs: number
  /** The heartbeat mismatch warning, once given. */
  warning: string | undefined
}

/** How long close() lets the last reply and the DISCONNECT leave. */
const CLOSE_DRAIN_MS = 200

/** Where the answers to one client's requests go. */
interface Route {
  readonly socket: TransportSocket
  /** `[] MDPW01 0x03 <client> []`: one array per client, so the answers of one turn join. */
  readonly head: readonly Buffer[]
  /** The dispatcher's peer: the client, so its fair share applies per caller behind the broker. */
  readonly peer: string
  /** Who the client is, as the broker authenticated it (AUTH on its behalf). */
  info?: PeerInfo
}

/** A request being served. */
interface Held {
  readonly route: Route
  readonly id: number
  readonly deadline: number
  answered: boolean
}

/** Deadlines share one timer per worker and fire at most this late (never early). */
const DEADLINE_TICK_MS = 5
/** Routes kept per client; past this the cache starts over, so it stays bounded. */
const MAX_CACHED_ROUTES = 1024

let workers = 0

export class BrokerWorker {
  private socket: TransportSocket | undefined
  private readonly limits: CborLimits
  private readonly peer: string
  private readonly beats: BrokerBeats
  private readonly heartbeat: NodeJS.Timeout
  private reconnectTimer: NodeJS.Timeout | undefined
  private readonly held = new Set<Held>()
  /** One route per client on the current socket: its answers in one turn join, whichever message brought the requests. */
  private readonly routes = new Map<string, Route>()
  /** Past the deadline the dispatcher drops a call without a word; the worker answers for it. */
  private readonly deadlines = new DeadlineWheel<Held>((held) => this.answer(held, encodeError(held.id, 'DEADLINE_EXCEEDED', 'deadline exceeded')), DEADLINE_TICK_MS)
  /** The broker beat while requests were held (the reference broker beats idle workers only). */
  private beatenWhileBusy = false
  private busySince = 0
  private taking = true
  private closing: Promise<void> | undefined
  readonly stats: BrokerWorkerStats = { malformed: 0, holding: 0, connects: 0, brokerHeartbeatMs: 0, warning: undefined }

  constructor(
    private readonly dispatcher: Dispatcher,
    private readonly endpoint: string,
    private readonly service: string,
    private readonly options: BrokerWorkerOptions,
  ) {
    this.peer = `mdp-worker-${++workers}`
    this.limits = { ...DEFAULT_CBOR_LIMITS, maxBytes: options.maxMessageSize }
    this.beats = new BrokerBeats(options.heartbeatMs, options.liveness, (observed) => this.warn(observed))
    this.connect()
    this.heartbeat = setInterval(() => this.tick(), options.heartbeatMs)
  }

  /**
   * Stops taking work: sends DISCONNECT so the broker routes this worker nothing new, and keeps
   * answering the request it holds (then close()). Never reconnects after.
   */
  stopTaking(): Promise<void> {
    if (!this.taking) return Promise.resolve()
    this.taking = false
    clearTimeout(this.reconnectTimer)
    this.send(...commandFrames(Command.Disconnect))
    return Promise.resolve()
  }

  /** Sends DISCONNECT (unless stopTaking() did) and closes the socket; call after the dispatcher has drained. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.stopTaking()
      clearInterval(this.heartbeat)
      this.forgetHeld()
      const socket = this.socket
      this.socket = undefined
      await socket?.close(CLOSE_DRAIN_MS)
    })()
    return this.closing
  }

  private connect(): void {
    this.reconnectTimer = undefined
    if (!this.taking) return
    const socket: TransportSocket = new TransportSocket(
      { type: 'dealer', maxMessageSize: this.options.maxMessageSize, ...(this.options.security !== undefined && { socketOptions: this.options.security }) },
      { onMessage: (frames) => this.onMessage(socket, frames) },
    )
    socket.connect(this.endpoint)
    this.socket = socket
    this.forgetHeld()
    this.beats.reset(Date.now())
    this.stats.connects++
    this.send(...readyFrames(this.service, this.options.credit))
  }

  /** Drops the socket and starts over with READY, at once or after `delayMs`. */
  private reconnect(delayMs: number): void {
    const old = this.socket
    this.socket = undefined
    this.forgetHeld()
    void old?.close(0)
    if (!this.taking) return
    if (delayMs === 0) this.connect()
    else this.reconnectTimer = setTimeout(() => this.connect(), delayMs)
  }

  private send(head: readonly Buffer[], body: Buffer): void {
    this.socket?.pushWithHead(head, body)
  }

  private tick(): void {
    if (this.socket === undefined) return
    // A broker may leave a busy worker unbeaten (the reference does): silence counts only while idle.
    if (this.taking && this.held.size === 0 && this.beats.silent(Date.now())) return this.reconnect(this.options.heartbeatMs)
    if (this.taking || this.held.size > 0) this.send(...commandFrames(Command.Heartbeat))
  }

  private onMessage(socket: TransportSocket, frames: Buffer[]): void {
    if (socket !== this.socket) return
    this.beats.heard(Date.now())
    const msg = parseWorkerMessage(frames)
    switch (msg.kind) {
      case 'request':
        return this.serve(socket, msg.client, msg.body)
      case 'heartbeat':
        if (this.held.size > 0) this.beatenWhileBusy = true
        this.beats.beat(Date.now())
        this.stats.brokerHeartbeatMs = this.beats.observedMs
        if (this.taking || this.held.size > 0) this.send(...commandFrames(Command.Heartbeat))
        return
      case 'disconnect':
        // After stopTaking() the broker's DISCONNECT only confirms it; otherwise it no longer knows this worker.
        if (this.taking) this.reconnect(0)
        return
      case 'ready':
      case 'reply':
      case 'invalid':
        return
    }
  }

  private serve(socket: TransportSocket, client: Buffer, body: Buffer[]): void {
    const key = client.toString('hex')
    let route = this.routes.get(key)
    if (route === undefined || route.socket !== socket) {
      if (this.routes.size >= MAX_CACHED_ROUTES) this.routes.clear()
      route = { socket, head: addressedHead(Command.Reply, client), peer: `broker:${key}` }
      this.routes.set(key, route)
    }
    const [frame] = body
    const scan = body.length === 1 && frame !== undefined ? scanFrame(frame, this.limits) : undefined
    if (scan === undefined || scan.kind === 'malformed') {
      this.stats.malformed++
      return this.reply(route, encodeError(0, 'INVALID_ARGUMENT', scan?.reason ?? 'expected one frame of REQUEST envelopes'))
    }
    for (let i = 0; i < scan.ends.length; i++) {
      const env = readEnvelope(frame!, scan, i)
      // A zrpc broker passes on a caller's CANCEL and CREDIT for the calls this worker holds.
      if (env.kind === Kind.Credit) {
        this.dispatcher.credit(route.peer, env.id, env.n)
        continue
      }
      if (env.kind === Kind.Cancel) {
        this.cancel(route, env.id)
        continue
      }
      if (env.kind === Kind.Auth) {
        // The broker says who this client is (it checked the client's proof): its calls carry the key.
        route.info = { publicKey: z85Encode(env.publicKey) }
        continue
      }
      if (env.kind !== Kind.Request) {
        this.stats.malformed++
        this.reply(route, encodeError(env.id ?? 0, 'INVALID_ARGUMENT', env.kind === 'malformed' ? env.reason : 'expected REQUEST, CANCEL or CREDIT envelopes'))
        continue
      }
      // The id of this client's call in progress: dropped unanswered (an answer would end that call), and not held.
      if (this.dispatcher.isDuplicate(route.peer, env.id)) continue
      // A broker that sends more than the credit gets each extra request answered all the same.
      if (this.held.size >= this.options.credit) {
        this.reply(route, encodeError(env.id, 'RESOURCE_EXHAUSTED', `this worker takes ${this.options.credit} requests at once`, { notStarted: true }))
        continue
      }
      if (!this.taking) {
        this.reply(route, encodeError(env.id, 'UNAVAILABLE', 'this worker is shutting down', { notStarted: true }))
        continue
      }
      const now = Date.now()
      if (this.held.size === 0) {
        this.busySince = now
        this.beatenWhileBusy = false
      }
      const held: Held = { route, id: env.id, deadline: now + env.timeoutMs, answered: false }
      this.held.add(held)
      this.stats.holding = this.held.size
      this.deadlines.add(held.deadline, held)
      this.dispatcher.handle(env, route.peer, (out, id, more) => {
        if (out.byteLength > this.options.maxMessageSize) {
          out = encodeError(id, 'RESOURCE_EXHAUSTED', `reply of ${out.byteLength} bytes exceeds maxMessageSize ${this.options.maxMessageSize}`)
          more = false
        }
        // A stream's ITEM goes out while the request stays held; its REPLY or ERROR ends it.
        if (more === true) {
          if (!held.answered && held.route.socket === this.socket) this.reply(held.route, out)
        } else this.answer(held, out)
      }, route.info)
    }
  }

  /**
   * The caller cancelled call `id`: its handler's signal aborts, and the worker answers CANCELLED at
   * once, so the broker frees the credit (the caller has already ended the call and drops the answer).
   */
  private cancel(route: Route, id: number): void {
    for (const held of this.held) {
      if (held.id !== id || held.route.peer !== route.peer) continue
      this.dispatcher.cancel(route.peer, id)
      this.answer(held, encodeError(id, 'CANCELLED', 'cancelled by the caller'))
      return
    }
  }

  /** Sends the one answer to a held request; later ones (the dispatcher after the deadline) are dropped. */
  private answer(held: Held, out: Body): void {
    if (held.answered) return
    held.answered = true
    this.held.delete(held)
    this.deadlines.remove(held.deadline, held)
    this.stats.holding = this.held.size
    // A broker that left this worker unbeaten through a long request: that gap is not its heartbeat interval.
    if (this.held.size === 0 && !this.beatenWhileBusy && Date.now() - this.busySince > this.options.heartbeatMs) this.beats.skip()
    if (held.route.socket === this.socket) this.reply(held.route, out)
  }

  private reply(route: Route, out: Body): void {
    route.socket.pushWithHead(route.head, out, undefined, true)
  }

  /** Forgets every held request (its socket is gone): their answers, if they come, go nowhere. */
  private forgetHeld(): void {
    for (const held of this.held) held.answered = true
    this.held.clear()
    this.routes.clear()
    this.deadlines.clear()
    this.stats.holding = 0
  }

  private warn(observedMs: number): void {
    const own = this.options.heartbeatMs
    this.stats.warning =
      `the broker at ${this.endpoint} heartbeats every ~${observedMs} ms but this worker is set to ${own} ms; ` +
      `it follows the broker's beats, but make them agree: heartbeatMs: ${observedMs} in connectBroker(), or --heartbeat ${own} on the broker`
    this.options.onWarning?.(this.stats.warning)
  }
}
