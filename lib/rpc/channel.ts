/**
 * A channel: one DEALER (a TransportSocket) to one server or broker endpoint, with its own
 * pending-call table.
 *
 * Calls are written through the socket's send queue and matched to replies by id. Every call ends
 * exactly once: with its reply, an error from the server, its deadline, its caller's signal, a lost
 * connection, or the channel closing, whichever comes first; whatever arrives after that is dropped.
 * A call is one {@link ChannelCall} object (its caller's promise lives there, not here); its deadline
 * waits on the channel's one DeadlineWheel (at most 5 ms late, never early) instead of a timer per call.
 *
 * ```
 *   DEALER  ->  [ frame: CBOR sequence of REQUEST / CANCEL / CREDIT / PING envelopes ]
 *           <-  [ frame: CBOR sequence of REPLY / ERROR / ITEM / PONG envelopes ]
 * ```
 * Through a Majordomo broker frames ride in MDP client messages instead (see framing.ts). A CANCEL
 * or CREDIT reaches the worker only through a zrpc broker; through another, cancelling or timing
 * out ends the call here only, and the worker's `ctx.signal` aborts at the deadline, which travels
 * in the request. A stream call (`window` set) waits until the broker has said it carries streams.
 *
 * Connection state (gRPC's fail-fast): a call is written only while the socket is `ready`. While it
 * is `connecting` the call waits for the outcome; while it is `failing` (refused, unresolvable) the
 * call fails at once with UNAVAILABLE `{ notStarted: true }`, unless it asked to `waitForReady`.
 * When a ready connection goes (lost, or replaced after a fatal error such as an oversized reply),
 * the calls written on it fail at once with UNAVAILABLE `{ connectionLost: true }`; the socket layer
 * reconnects and later calls go through.
 */
import { RpcError } from '../errors.js'
import { DEFAULT_CBOR_LIMITS, type CborLimits } from '../codec/cbor.js'
import { MAX_ID, encodeCancel, encodeCredit, encodePing, encodeRequest, requestSize } from '../codec/envelope.js'
import type { Body } from '../transport/send-queue.js'
import { TransportSocket, type ConnectionState } from '../transport/socket.js'
import { LatencyAverage } from './balancer.js'
import { DeadlineWheel, atDeadline } from './deadline-timer.js'
import { directFraming, type Framing } from './framing.js'
import { deliver, type ReplyContext, type ReplyCounters } from './channel-replies.js'
import type { ChannelCall } from './channel-call.js'

export { ChannelCall } from './channel-call.js'

export interface ChannelOptions {
  readonly maxMessageSize: number
  readonly coalesce: boolean
  /** How frames travel (default: direct to a zrpc server). */
  readonly framing?: Framing
  /** Heartbeats to a direct server (docs/protocol.md, Heartbeats); false: none. */
  readonly heartbeat?: HeartbeatOptions | false
  /** A fixed routing id for the socket (through a broker), instead of one libzmq picks per connection. */
  readonly routingId?: string
  /** libzmq security options (CURVE, transport/curve.ts). */
  readonly security?: Record<string, unknown>
  /** The AUTH envelope to send first on every connection (a CURVE client proving its key). */
  readonly auth?: Buffer
}

/** When a server that stopped answering is given up on. */
export interface HeartbeatOptions {
  /** Silence (ms) with calls in flight after which the client sends PING (default 1000). */
  readonly intervalMs: number
  /** Silence (ms) with calls in flight after which the endpoint is marked down (default 2000). */
  readonly timeoutMs: number
}

export const HEARTBEAT_DEFAULTS: HeartbeatOptions = { intervalMs: 1000, timeoutMs: 2000 }
/** The MDP service an AUTH envelope rides to a broker under: the broker's own, which it reads itself. */
const AUTH_CARRIER = 'zrpc.broker'
/** Longest wait between PINGs to an endpoint marked down. */
const MAX_PROBE_MS = 30_000

/** How long close() lets the CANCELs of pending calls leave before the socket goes (ms). */
export const CLOSE_DRAIN_MS = 100

/** Deadlines share one timer per channel and fire at most this late (never early). */
const DEADLINE_TICK_MS = 5

/** Counters a channel keeps; exposed through the client's stats. */
export interface ChannelCounters extends ReplyCounters {
  calls: number
  /** Times a ready connection went away, failing the calls written on it. */
  connectionsLost: number
  /** Calls failed at once because the endpoint could not be reached. */
  failedFast: number
  /** Times the endpoint was marked down for its silence (heartbeat), failing the calls written to it. */
  markedDown: number
}

/** A channel's counters, connection state and the socket layer's recoveries. */
export interface ChannelStats extends ChannelCounters {
  inFlight: number
  /** Moving average of this endpoint's answer time in ms (0 until it has answered). */
  latencyMs: number
  connected: boolean
  state: ConnectionState
  /** Why the state last changed, e.g. "cannot connect to 127.0.0.1:5555". */
  stateDetail: string
  /** Sockets replaced after a connection died without a libzmq retry (oversized message). */
  recoveries: number
}

export class Channel {
  private readonly socket: TransportSocket
  private readonly pending = new Map<number, ChannelCall>()
  private readonly limits: CborLimits
  private readonly framing: Framing
  private closed = false
  private wasReady = false
  private readonly counters: ChannelCounters = { calls: 0, lateReplies: 0, malformed: 0, unknownKinds: 0, misrouted: 0, connectionsLost: 0, failedFast: 0, markedDown: 0 }
  private readonly replies: ReplyContext
  private readonly deadlines = new DeadlineWheel<ChannelCall>((call) => this.expire(call), DEADLINE_TICK_MS)
  private readonly latency = new LatencyAverage()
  /** Set by drain(): resolves once the last pending call has ended. */
  private drained: (() => void) | undefined
  /** Heartbeat state: when the server was last heard, since when calls have been waiting, and whether it is down. */
  private readonly heartbeat: HeartbeatOptions | undefined
  private heartbeatTimer: NodeJS.Timeout | undefined
  private lastHeard = 0
  private busySince = 0
  private lastPing = 0
  private lastTick = 0
  private down = false
  private downDetail = ''
  private probeDelayMs = 0
  private nextProbeAt = 0
  /** Waiting for the connection to be up again or failing (see settled()). */
  private readonly settleWaiters = new Set<() => void>()
  private lastService = ''
  private lastServiceBytes = 0
  private lastMethod = ''
  private lastMethodBytes = 0

  /** `endpoint` must have passed checkEndpoint: the socket layer checks it again, but the client does first. */
  constructor(
    readonly endpoint: string,
    private readonly nextId: () => number,
    private readonly options: ChannelOptions,
  ) {
    this.limits = { ...DEFAULT_CBOR_LIMITS, maxBytes: options.maxMessageSize }
    this.framing = options.framing ?? directFraming
    this.replies = {
      endpoint,
      framing: this.framing,
      limits: this.limits,
      pending: this.pending,
      counters: this.counters,
      answered: (call) => this.latency.add(performance.now() - call.sentAt),
    }
    this.socket = new TransportSocket(
      // A short linger, so the CANCELs that close() writes can leave after the socket closes. Through a
      // broker a fixed routing id, so a durable broker knows this client again after either side restarts.
      {
        type: 'dealer',
        maxMessageSize: options.maxMessageSize,
        coalesce: options.coalesce && this.framing.coalesce,
        lingerMs: CLOSE_DRAIN_MS,
        socketOptions: { ...options.security, ...(options.routingId !== undefined && { routingId: options.routingId }) },
      },
      {
        onMessage: (frames) => {
          this.heard()
          const streams = this.framing.streams
          deliver(frames, this.replies)
          // A broker has said whether it carries streams: the streams waiting for that go, or fail.
          if (this.framing.streams !== streams) this.sendWaiting(this.state)
        },
        onState: (state) => this.onState(state),
      },
    )
    try {
      this.socket.connect(endpoint)
    } catch (err) {
      void this.socket.close()
      throw err
    }
    const heartbeat = options.heartbeat ?? false
    this.heartbeat = heartbeat === false || this.framing !== directFraming ? undefined : heartbeat
    if (this.heartbeat !== undefined) {
      // Half the interval: a server is judged at most half an interval late. Unref'd: an idle client keeps no process alive.
      this.heartbeatTimer = setInterval(() => this.tick(), this.heartbeat.intervalMs / 2)
      this.heartbeatTimer.unref()
    }
  }

  get inFlight(): number {
    return this.pending.size
  }

  /** Moving average of the time this endpoint took to answer, in ms (0 until it has answered). */
  get latencyMs(): number {
    return this.latency.ms()
  }

  /** The socket's connection state, or `failing` while the endpoint is marked down for its silence. */
  get state(): ConnectionState {
    return this.down ? 'failing' : this.socket.state
  }

  get connected(): boolean {
    return this.state === 'ready'
  }

  private get stateDetail(): string {
    return this.down ? this.downDetail : this.socket.stateDetail
  }

  get stats(): ChannelStats {
    const { state, stateDetail } = this
    return {
      ...this.counters,
      inFlight: this.pending.size,
      latencyMs: Math.round(this.latency.ms() * 1000) / 1000,
      connected: state === 'ready',
      state,
      stateDetail,
      recoveries: this.socket.counters.recoveries,
    }
  }

  /**
   * Sends one call; its outcome goes to `call.succeeded(result)` or `call.failed(err)`, exactly once,
   * possibly before this returns. One table entry per call, the deadline on the channel's one wheel,
   * and a listener only on a signal that was given.
   */
  call(call: ChannelCall): void {
    if (this.closed) return call.failed(this.tagged(new RpcError('CANCELLED', 'client is closed')))
    const signal = call.signal
    if (signal?.aborted === true) return call.failed(this.tagged(new RpcError('CANCELLED', 'call cancelled before it was sent')))
    const id = this.nextId()
    const left = call.deadline - Date.now()
    const frame = this.encode(call, id, left)
    if (frame instanceof RpcError) return call.failed(this.tagged(frame))
    const state = this.state
    if (state === 'failing' && !call.waitForReady) {
      this.counters.failedFast++
      return call.failed(this.tagged(this.unreachable()))
    }
    call.id = id
    call.sent = false
    call.budget = Math.round(left)
    call.sentAt = performance.now()
    call.ender = this
    if (this.pending.size === 0) this.busySince = call.sentAt
    this.pending.set(id, call)
    this.counters.calls++
    // No CANCEL at the deadline: the server holds the same budget and aborts the handler itself, with
    // the reason DEADLINE_EXCEEDED that its handler should see, at most one trip later.
    this.deadlines.add(call.deadline, call)
    if (signal !== undefined) {
      call.onAbort = () => this.abort(call)
      signal.addEventListener('abort', call.onAbort, { once: true })
    }
    if (state === 'ready') this.sendOrHold(call, frame)
  }

  /**
   * Resolves once the connection is no longer `connecting` (up again, or failing: refused, marked
   * down, closed), or at `deadline`. A retry after a lost connection asks this before it chooses
   * between the same server (back: its call record answers) and another one (gone).
   */
  settled(deadline: number): Promise<void> {
    if (this.state !== 'connecting' || this.closed) return Promise.resolve()
    return new Promise<void>((resolve) => {
      const done = (): void => {
        timer.clear()
        this.settleWaiters.delete(done)
        resolve()
      }
      const timer = atDeadline(deadline, done)
      this.settleWaiters.add(done)
    })
  }

  /** Lets stream `call` send `n` more items (a CREDIT), if it is still in flight here. */
  grant(call: ChannelCall, n: number): void {
    if (this.pending.get(call.id) !== call || !call.sent || !this.framing.canCancel) return
    this.framing.push(this.socket, call.service, encodeCredit(call.id, n))
  }

  /** Ends `call` with CANCELLED, and tells the server when the call reached it. */
  cancel(call: ChannelCall): void {
    this.abort(call)
  }

  /** Takes an ended call out of the table, the wheel and its signal. */
  end(call: ChannelCall): void {
    call.ender = undefined
    this.pending.delete(call.id)
    if (this.drained !== undefined && this.pending.size === 0) this.drained()
    this.deadlines.remove(call.deadline, call)
    if (call.onAbort !== undefined) {
      call.signal?.removeEventListener('abort', call.onAbort)
      call.onAbort = undefined
    }
  }

  private abort(call: ChannelCall): void {
    if (this.pending.get(call.id) !== call) return
    if (call.sent) this.sendCancel(call.service, call.id)
    call.reject(new RpcError('CANCELLED', 'call cancelled by the caller'))
  }

  private expire(call: ChannelCall): void {
    if (this.pending.get(call.id) !== call) return
    call.reject(
      call.sent
        ? new RpcError('DEADLINE_EXCEEDED', `deadline of ${call.budget} ms exceeded calling ${call.service}.${call.method}`)
        : new RpcError('DEADLINE_EXCEEDED', `deadline of ${call.budget} ms exceeded waiting for ${this.endpoint}: ${this.stateDetail}`, { notStarted: true }),
    )
  }

  /**
   * Closes once the calls already written have ended (by their answers or deadlines); calls still
   * waiting for a connection fail at once with UNAVAILABLE `{ notStarted: true }`, so a client with
   * other endpoints sends them there. The client gives this channel nothing new meanwhile.
   */
  async drain(): Promise<void> {
    for (const call of [...this.pending.values()]) {
      if (!call.sent) call.reject(new RpcError('UNAVAILABLE', `endpoint ${this.endpoint} was removed before the call was sent`, { notStarted: true, endpoint: this.endpoint }))
    }
    if (this.pending.size > 0) await new Promise<void>((resolve) => (this.drained = resolve))
    await this.close()
  }

  /**
   * Ends every pending call with CANCELLED: the calls already written get a CANCEL (direct framing),
   * given up to {@link CLOSE_DRAIN_MS} to leave, so servers stop working for nobody. Then closes the socket.
   */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearInterval(this.heartbeatTimer)
    for (const done of [...this.settleWaiters]) done()
    const calls = [...this.pending]
    if (this.framing.canCancel && this.socket.state === 'ready') {
      for (const [id, call] of calls) if (call.sent) this.sendCancel(call.service, id)
    }
    await this.socket.close(CLOSE_DRAIN_MS)
    this.deadlines.clear()
    // Rejected last, right before close() resolves, so a caller that awaits close() before handling
    // its calls' rejections does not see them reported as unhandled.
    for (const [id, call] of calls) if (this.pending.get(id) === call) call.reject(new RpcError('CANCELLED', 'client closed'))
  }

  /**
   * The REQUEST with the budget left now, or the error that keeps it from being sent. Without
   * metadata the call itself is the envelope, written into the outgoing frame when it leaves.
   */
  private encode(call: ChannelCall, id: number, left: number): Body | RpcError {
    const remaining = Math.min(MAX_ID, Math.ceil(left))
    if (remaining <= 0) return new RpcError('DEADLINE_EXCEEDED', 'deadline passed before the call was sent', { notStarted: true })
    const { service, method, params, metadata } = call
    let frame: Body
    if (metadata === undefined) {
      // The names of a burst are mostly the same: remember the last ones' lengths.
      if (service !== this.lastService) this.lastServiceBytes = Buffer.byteLength((this.lastService = service))
      if (method !== this.lastMethod) this.lastMethodBytes = Buffer.byteLength((this.lastMethod = method))
      call.timeoutMs = remaining
      call.serviceBytes = this.lastServiceBytes
      call.methodBytes = this.lastMethodBytes
      call.byteLength = requestSize(id, call.serviceBytes, call.methodBytes, remaining, params.length, call.window, call.key)
      frame = call
    } else frame = encodeRequest(id, service, method, remaining, metadata, params, call.window, call.key)
    if (frame.byteLength > this.options.maxMessageSize) {
      return new RpcError('RESOURCE_EXHAUSTED', `request of ${frame.byteLength} bytes exceeds maxMessageSize ${this.options.maxMessageSize}`)
    }
    return frame
  }

  /** Sends `call` on a ready connection, unless it is a stream that must wait for the broker to say it carries streams. */
  private sendOrHold(call: ChannelCall, frame: Body): void {
    if (call.window === undefined) return this.send(call, frame)
    const streams = this.framing.streams
    if (streams === true) return this.send(call, frame)
    if (streams === false) {
      call.reject(new RpcError('UNIMPLEMENTED', `streams through a broker need a zrpc broker; the broker at ${this.endpoint} does not answer mmi.zrpc`, { notStarted: true, broker: true }))
    }
  }

  private send(call: ChannelCall, frame: Body): void {
    if (this.framing.push(this.socket, call.service, frame)) call.sent = true
    else call.reject(new RpcError('RESOURCE_EXHAUSTED', `send queue to ${this.endpoint} is full`, { notStarted: true }))
  }

  private sendCancel(service: string, id: number): void {
    if (this.framing.canCancel) this.framing.push(this.socket, service, encodeCancel(id))
  }

  /** An error for a call this channel never took into its table, with its endpoint, as reject() gives the others. */
  private tagged(err: RpcError): RpcError {
    err.endpoint = this.endpoint
    return err
  }

  private unreachable(): RpcError {
    // The server refused this client's CURVE key, or one side uses CURVE and the other not.
    const refused = this.socket.authFailure
    if (refused !== undefined && !this.down) {
      return new RpcError('UNAUTHENTICATED', `${refused}; the call was not sent`, { notStarted: true, endpoint: this.endpoint })
    }
    return new RpcError(
      'UNAVAILABLE',
      `${this.endpoint} is unavailable (${this.stateDetail}); the call was not sent. Is the server running there? Pass waitForReady: true to wait for it`,
      { notStarted: true, endpoint: this.endpoint },
    )
  }

  private onState(state: ConnectionState): void {
    if (this.closed) return
    if (this.wasReady && state !== 'ready') {
      this.counters.connectionsLost++
      if (this.framing.durable) {
        // A durable broker keeps what it accepted: the calls go again, same ids, once connected again;
        // it answers each once (streams it does not keep: they end).
        for (const call of [...this.pending.values()]) {
          if (call.window === undefined) {
            // On record there (or about to be): it waits for the broker to come back, up to its deadline.
            if (call.sent) call.waitForReady = true
            call.sent = false
          } else if (call.sent) call.reject(new RpcError('UNAVAILABLE', `connection to ${this.endpoint} lost during the stream`, { connectionLost: true }))
        }
      } else {
        // The server's replies would go to a connection that no longer exists: fail now, not at the deadlines.
        const lost = new RpcError('UNAVAILABLE', `connection to ${this.endpoint} lost; the call may or may not have run`, { connectionLost: true })
        for (const call of [...this.pending.values()]) if (call.sent) call.reject(lost)
      }
    }
    if (state === 'ready' && !this.wasReady) {
      // Who this client is goes first, before any call on the new connection (through a broker: to the broker itself).
      if (this.options.auth !== undefined) this.framing.push(this.socket, AUTH_CARRIER, this.options.auth)
      this.framing.connected?.(this.socket)
    }
    this.wasReady = state === 'ready'
    this.sendWaiting(this.down ? 'failing' : state)
    if (state !== 'connecting') for (const done of [...this.settleWaiters]) done()
  }

  /** Sends the calls that waited for a connection (`ready`), or fails them fast (`failing`). */
  private sendWaiting(state: ConnectionState): void {
    for (const [id, call] of [...this.pending]) {
      if (call.sent) continue
      if (state === 'ready') {
        const frame = this.encode(call, id, call.deadline - Date.now())
        if (frame instanceof RpcError) call.reject(frame)
        else this.sendOrHold(call, frame)
      } else if (state === 'failing' && !call.waitForReady) {
        this.counters.failedFast++
        call.reject(this.unreachable())
      }
    }
  }

  /** Any message from the server shows it is there; one that was marked down is back. */
  private heard(): void {
    this.lastHeard = performance.now()
    if (!this.down) return
    this.down = false
    this.sendWaiting(this.socket.state)
  }

  /**
   * Every half interval: with calls in flight and nothing heard for `intervalMs`, PING; for
   * `timeoutMs`, mark the endpoint down. While down, PING with a growing delay until it answers.
   */
  private tick(): void {
    const heartbeat = this.heartbeat!
    const now = performance.now()
    const late = now - this.lastTick > heartbeat.intervalMs * 1.5
    this.lastTick = now
    if (this.closed || this.socket.state !== 'ready') return
    if (this.down) {
      if (now < this.nextProbeAt) return
      this.ping(now)
      this.probeDelayMs = Math.min(this.probeDelayMs * 2, MAX_PROBE_MS)
      this.nextProbeAt = now + this.probeDelayMs
      return
    }
    if (this.pending.size === 0) return
    // This process was blocked (a tick came late): the server cannot be blamed for what we did not read. Start over.
    if (late) {
      this.busySince = now
      return
    }
    const silent = now - Math.max(this.lastHeard, this.busySince)
    if (silent >= heartbeat.timeoutMs) return this.markDown(Math.round(silent), now)
    if (silent >= heartbeat.intervalMs && now - this.lastPing >= heartbeat.intervalMs) this.ping(now)
  }

  private ping(now: number): void {
    this.lastPing = now
    this.socket.push(encodePing(this.nextId()))
  }

  /** The server is silent though calls wait on it: fail them now (they may have run), and send it nothing new until it answers. */
  private markDown(silentMs: number, now: number): void {
    this.down = true
    this.counters.markedDown++
    this.downDetail = `no answer from ${this.endpoint} for ${silentMs} ms (heartbeat)`
    this.probeDelayMs = this.heartbeat!.intervalMs
    this.nextProbeAt = now + this.probeDelayMs
    const lost = new RpcError('UNAVAILABLE', `${this.downDetail}; the call may or may not have run`, { connectionLost: true, endpoint: this.endpoint })
    for (const call of [...this.pending.values()]) {
      if (call.sent) call.reject(lost)
    }
    this.sendWaiting('failing')
  }
}
