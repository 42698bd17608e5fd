/**
 * A broker worker: one Majordomo (7/MDP) worker on its own DEALER (a TransportSocket), one request
 * at a time, feeding a Dispatcher. A server runs several per service to handle several requests at
 * once through a broker.
 *
 * ```
 *   worker  ->  [ '' ][ 'MDPW01' ][ 0x01 ][ service ]                     READY (per socket)
 *   broker  ->  [ '' ][ 'MDPW01' ][ 0x02 ][ client ][ '' ][ REQUEST ]
 *   worker  ->  [ '' ][ 'MDPW01' ][ 0x03 ][ client ][ '' ][ REPLY / ERROR ]
 *   either  <>  [ '' ][ 'MDPW01' ][ 0x04 ]                                HEARTBEAT (each beat answered)
 *   either  <>  [ '' ][ 'MDPW01' ][ 0x05 ]                                DISCONNECT
 * ```
 * MDP requires exactly one reply per request before the next one comes, so every request is
 * answered exactly once, even one the dispatcher ends without a reply (its deadline passed): the
 * broker would otherwise count this worker busy for ever. After the broker's silence (see
 * mdp-heartbeat.ts) or a DISCONNECT it starts over on a fresh socket with READY.
 */
import { Command, parseWorkerMessage } from '../../patterns/majordomo-protocol.js'
import { DEFAULT_CBOR_LIMITS, type CborLimits } from '../codec/cbor.js'
import { Kind, encodeError, parseFrame } from '../codec/envelope.js'
import { TransportSocket } from '../transport/socket.js'
import { atDeadline, type DeadlineTimer } from './deadline-timer.js'
import type { Dispatcher } from './dispatcher.js'
import { BrokerBeats } from './mdp-heartbeat.js'
import { addressedHead, commandFrames, readyFrames } from './mdp-frames.js'

export interface BrokerWorkerOptions {
  readonly maxMessageSize: number
  /** This worker's heartbeat interval; it also answers each of the broker's beats, so the two need not match. */
  readonly heartbeatMs: number
  readonly liveness: number
  /** Called once if the broker's heartbeat interval differs from `heartbeatMs`, with what to change. */
  readonly onWarning?: (message: string) => void
}

/** What a worker counts. */
export interface BrokerWorkerStats {
  /** Bodies that were not exactly one readable REQUEST envelope, answered with an error. */
  malformed: number
  /** READYs sent: 1, plus one per reconnect. */
  connects: number
  /** The broker's heartbeat interval as observed, in ms (0 until seen). */
  brokerHeartbeatMs: number
  /** The heartbeat mismatch warning, once given. */
  warning: string | undefined
}

/** How long close() lets the last reply and the DISCONNECT leave. */
const CLOSE_DRAIN_MS = 200

interface Held {
  readonly socket: TransportSocket
  readonly client: Buffer
  timer: DeadlineTimer | undefined
  /** The broker beat while this request was held (the reference broker beats idle workers only). */
  beaten: boolean
  readonly since: number
}

let workers = 0

export class BrokerWorker {
  private socket: TransportSocket | undefined
  private readonly limits: CborLimits
  private readonly peer: string
  private readonly beats: BrokerBeats
  private readonly heartbeat: NodeJS.Timeout
  private reconnectTimer: NodeJS.Timeout | undefined
  private held: Held | undefined
  private taking = true
  private closing: Promise<void> | undefined
  readonly stats: BrokerWorkerStats = { malformed: 0, connects: 0, brokerHeartbeatMs: 0, warning: undefined }

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
      this.held?.timer?.clear()
      this.held = undefined
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
      { type: 'dealer', maxMessageSize: this.options.maxMessageSize, coalesce: false },
      { onMessage: (frames) => this.onMessage(socket, frames) },
    )
    socket.connect(this.endpoint)
    this.socket = socket
    this.held = undefined
    this.beats.reset(Date.now())
    this.stats.connects++
    this.send(...readyFrames(this.service))
  }

  /** Drops the socket and starts over with READY, at once or after `delayMs`. */
  private reconnect(delayMs: number): void {
    const old = this.socket
    this.socket = undefined
    this.held?.timer?.clear()
    this.held = undefined
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
    if (this.taking && this.held === undefined && this.beats.silent(Date.now())) return this.reconnect(this.options.heartbeatMs)
    if (this.taking || this.held !== undefined) this.send(...commandFrames(Command.Heartbeat))
  }

  private onMessage(socket: TransportSocket, frames: Buffer[]): void {
    if (socket !== this.socket) return
    this.beats.heard(Date.now())
    const msg = parseWorkerMessage(frames)
    switch (msg.kind) {
      case 'request':
        return this.serve(socket, msg.client, msg.body)
      case 'heartbeat':
        if (this.held !== undefined) this.held.beaten = true
        this.beats.beat(Date.now())
        this.stats.brokerHeartbeatMs = this.beats.observedMs
        if (this.taking || this.held !== undefined) this.send(...commandFrames(Command.Heartbeat))
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
    const reply = (frame: Buffer): void => void socket.pushWithHead(addressedHead(Command.Reply, client), frame)
    const [frame] = body
    const envelopes = body.length === 1 && frame !== undefined ? parseFrame(frame, this.limits) : []
    const [env] = envelopes
    if (envelopes.length !== 1 || env === undefined || env.kind !== Kind.Request) {
      this.stats.malformed++
      return reply(encodeError(env?.id ?? 0, 'INVALID_ARGUMENT', env?.kind === 'malformed' ? env.reason : 'expected one REQUEST envelope'))
    }
    // MDP sends one request at a time; a broker that sends more gets each one answered all the same.
    if (this.held !== undefined) return reply(encodeError(env.id, 'RESOURCE_EXHAUSTED', 'this MDP worker is already serving a request', { notStarted: true }))
    if (!this.taking) return reply(encodeError(env.id, 'UNAVAILABLE', 'this worker is shutting down', { notStarted: true }))
    const held: Held = { socket, client, timer: undefined, beaten: false, since: Date.now() }
    this.held = held
    // Tells the broker this worker beats while busy, so its death while busy is noticed.
    this.send(...commandFrames(Command.Heartbeat))
    const answer = (out: Buffer): void => {
      if (this.held !== held) return
      this.held = undefined
      held.timer?.clear()
      // A broker that left this worker unbeaten for a long request: that gap is not its heartbeat interval.
      if (!held.beaten && Date.now() - held.since > this.options.heartbeatMs) this.beats.skip()
      reply(out)
    }
    // Past the deadline the dispatcher drops the call without a word; this worker answers for it, so
    // the broker frees it at once. atDeadline never fires early, whatever the budget.
    held.timer = atDeadline(Date.now() + env.timeoutMs, () => answer(encodeError(env.id, 'DEADLINE_EXCEEDED', 'deadline exceeded')))
    this.dispatcher.handle(env, this.peer, (out, id) => {
      if (out.length > this.options.maxMessageSize) {
        out = encodeError(id, 'RESOURCE_EXHAUSTED', `reply of ${out.length} bytes exceeds maxMessageSize ${this.options.maxMessageSize}`)
      }
      answer(out)
    })
  }

  private warn(observedMs: number): void {
    const own = this.options.heartbeatMs
    this.stats.warning =
      `the broker at ${this.endpoint} heartbeats every ~${observedMs} ms but this worker is set to ${own} ms; ` +
      `it follows the broker's beats, but make them agree: heartbeatMs: ${observedMs} in connectBroker(), or --heartbeat ${own} on the broker`
    this.options.onWarning?.(this.stats.warning)
  }
}
