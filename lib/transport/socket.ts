/**
 * TransportSocket: the one place in lib/ that creates, configures, reads, writes and closes a
 * zeromq socket.
 *
 * ```
 *            push() ──► SendQueue ──► zeromq socket ──► network
 *   onMessage(frames) ◄── one receive loop ◄──┘   └── monitor events ──► onState / onPeer
 * ```
 * - Options come from one table (options.ts): byte budgets turned into high-water marks.
 * - One receive loop per socket. A handler may return a promise: the next message is read once it
 *   settles, so a slow consumer pushes back on libzmq (whose queue is bounded) instead of piling up
 *   messages in memory. Errors from the loop or a handler are reported through `onError`, never
 *   thrown: there is no unhandled rejection to kill the process.
 * - A connecting socket reports its connection state. libzmq retries a lost connection by itself,
 *   except after a fatal error on it (an oversized message, a protocol error): then it stays silent
 *   for ever. So a connection that ends without a retry gets a fresh socket after `recoverAfterMs`.
 * - A ROUTER can report peers connecting and leaving (ZMQ_ROUTER_NOTIFY), so a server can cancel
 *   the calls of a client that went away.
 */
import { Dealer, Router, Subscriber, XPublisher, XSubscriber } from 'zeromq'
import { checkEndpoint } from './endpoint.js'
import { TRANSPORT_DEFAULTS, zmqOptions, type TransportOptions } from './options.js'
import { SendQueue, type Body, type FrameSink, type SendQueueCounters } from './send-queue.js'

export type SocketType = 'router' | 'dealer' | 'xpub' | 'xsub' | 'sub'

/** Every zeromq.js socket type this layer makes. */
export type Socket = Router | Dealer | XPublisher | XSubscriber | Subscriber

/**
 * A connecting socket's state: `connecting` until the first handshake or failure, `ready` while a
 * connection is up, `failing` while libzmq cannot connect (refused, unreachable, unresolvable) and
 * retries, `closed` after close().
 */
export type ConnectionState = 'connecting' | 'ready' | 'failing' | 'closed'

export interface SocketHandlers {
  /** Each received message. A returned promise holds the next read until it settles. */
  onMessage(frames: Buffer[]): void | Promise<void>
  /** Errors of the receive loop or of `onMessage`; the loop goes on. */
  onError?(err: unknown): void
  /** A connecting socket's state changed; `detail` says why, for error messages. */
  onState?(state: ConnectionState, detail: string): void
  /** A ROUTER made with `notifyPeers`: a peer connected or went away. */
  onPeer?(routingId: Buffer, event: 'connected' | 'disconnected'): void
}

export interface TransportSocketOptions extends TransportOptions {
  readonly type: SocketType
  /** ROUTER only: report peers connecting and leaving through `onPeer`. */
  readonly notifyPeers?: boolean
  /** Socket-type options passed to zeromq.js as they are (for example `{ verbose: true }` on an XPUB). */
  readonly socketOptions?: Record<string, unknown>
}

/** What a socket counts, for the owner's stats. */
export interface TransportCounters {
  received: number
  receivedBytes: number
  /** Errors reported from the receive loop or handlers. */
  errors: number
  /** Connections that came up (handshakes). */
  connects: number
  /** Connections that went down. */
  disconnects: number
  /** Sockets replaced after a connection died without a retry. */
  recoveries: number
  /**
   * Receives that the watchdog ended (see RECEIVE_WATCHDOG_MS) and found a message waiting:
   * zeromq.js had missed that the socket became readable. Each one was a stall of up to that long.
   */
  missedWakeups: number
  readonly send: SendQueueCounters
}

/**
 * zeromq.js 6 can miss that a socket became readable: when one poll event both completes a send
 * that waited for the high-water mark and makes messages arrive, it checks readability before the
 * send and not after, so a pending receive waits for an event that never comes (seen here as calls
 * stuck with the DEALER reporting `readable`). Every receive therefore has this timeout: past it
 * zeromq.js tries the read anyway, and the loop simply receives again when there was nothing.
 */
export const RECEIVE_WATCHDOG_MS = 250

// ZMQ_ROUTER_NOTIFY (a draft option that the bundled libzmq has): connect and disconnect notices.
const ZMQ_ROUTER_NOTIFY = 97
const NOTIFY_CONNECT_AND_DISCONNECT = 3
/** zeromq.js keeps its raw option setters protected; this one option has no named accessor. */
interface RawOptions {
  setInt32Option(option: number, value: number): void
}

export class TransportSocket implements FrameSink {
  private socket: Socket
  private readonly queue: SendQueue
  private readonly connected: string[] = []
  /** Bound endpoints: a socket that listens is never replaced (its replacement would listen nowhere). */
  private bound = false
  /** Connections that ended and that libzmq has not yet retried or restored. */
  private readonly unrecovered = new Set<string>()
  /** Set while the state is `failing` because a server refused this client's security (CURVE). */
  authFailure: string | undefined = undefined
  /** The last handshake failure per address, until a handshake there succeeds. */
  private readonly handshakeFailures = new Map<string, string>()
  /** Connections lost whose reconnect libzmq has not tried yet: its first "retry" is only the schedule. */
  private readonly justLost = new Set<string>()
  private readonly ready = new Set<string>()
  private readonly peers = new Set<string>()
  private readonly loops = new Set<Promise<void>>()
  private readonly reading = new WeakSet<Socket>()
  private recoverTimer: NodeJS.Timeout | undefined
  private isClosed = false
  private currentState: ConnectionState = 'connecting'
  private lastDetail = 'not connected yet'
  readonly counters: TransportCounters

  constructor(
    private readonly options: TransportSocketOptions,
    private readonly handlers: SocketHandlers,
  ) {
    this.socket = this.open()
    this.queue = new SendQueue(this, {
      coalesce: options.coalesce ?? true,
      maxFrameBytes: options.maxFrameBytes ?? TRANSPORT_DEFAULTS.maxFrameBytes,
      maxQueuedBytes: options.maxQueuedBytes ?? TRANSPORT_DEFAULTS.maxQueuedBytes,
      maxParkedBytesPerPeer: options.maxParkedBytesPerPeer ?? TRANSPORT_DEFAULTS.maxParkedBytesPerPeer,
      parkSlowPeers: options.type === 'router',
      onError: (err) => this.report(err),
    })
    this.counters = { received: 0, receivedBytes: 0, errors: 0, connects: 0, disconnects: 0, recoveries: 0, missedWakeups: 0, send: this.queue.counters }
  }

  /** The connection state (meaningful on connecting sockets) and the last reason it changed. */
  get state(): ConnectionState {
    return this.currentState
  }
  get stateDetail(): string {
    return this.lastDetail
  }

  get closed(): boolean {
    return this.isClosed
  }

  /** Routing ids (latin1) of the peers a notifying ROUTER knows to be connected. */
  get peerCount(): number {
    return this.peers.size
  }

  /** Binds `endpoint` (checked first) and returns it resolved: `tcp://127.0.0.1:*` gets its port. */
  async bind(endpoint: string): Promise<string> {
    checkEndpoint(endpoint, 'bind')
    if (this.isClosed) throw new Error('socket is closed')
    this.bound = true
    await this.socket.bind(endpoint)
    this.startLoop(this.socket)
    return this.socket.lastEndpoint ?? endpoint
  }

  /** Connects to `endpoint` (checked first); libzmq connects in the background and reconnects by itself. */
  connect(endpoint: string): void {
    checkEndpoint(endpoint, 'connect')
    if (this.isClosed) throw new Error('socket is closed')
    this.connected.push(endpoint)
    this.socket.connect(endpoint)
    // inproc connections raise no monitor events; they exist as soon as both ends do.
    if (endpoint.startsWith('inproc://')) this.markReady(endpoint)
    this.startLoop(this.socket)
  }

  /** Queues a body for the peer (DEALER, XSUB), or for routing id `to` (ROUTER). False when refused (full or closed). */
  push(body: Body, to?: Buffer): boolean {
    return this.queue.push(body, to)
  }

  /**
   * Queues `head` frames then `body` as one message. With `joinable` the body is a zrpc frame that may
   * be joined with others for the same peer behind the same `head` array (see SendQueue.pushWithHead).
   */
  pushWithHead(head: readonly Buffer[], body: Body, to?: Buffer, joinable = false): boolean {
    return this.queue.pushWithHead(head, body, to, joinable)
  }

  /** The zeromq.js socket, for type-specific calls (subscribe). Never keep it: recovery replaces it. */
  get raw(): Socket {
    return this.socket
  }

  /** FrameSink for the send queue: the current socket. */
  send(message: Buffer | Buffer[]): Promise<void> {
    return (this.socket as Dealer).send(message)
  }

  /**
   * Lets queued messages leave for up to `drainMs` (default 0), then closes the socket and waits
   * for its receive loop to end. Never waits longer than `drainMs` plus one event-loop turn.
   */
  async close(drainMs = 0): Promise<void> {
    if (this.isClosed) return
    if (drainMs > 0) {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([this.queue.idle(), new Promise<void>((resolve) => (timer = setTimeout(resolve, drainMs)))])
      clearTimeout(timer)
    }
    this.isClosed = true
    clearTimeout(this.recoverTimer)
    this.queue.clear()
    this.setState('closed', 'closed')
    this.socket.close()
    await Promise.all(this.loops)
  }

  private open(): Socket {
    const bound = this.options.type === 'router' || this.options.type === 'xpub'
    const base = { ...zmqOptions(this.options, bound, this.options.type !== 'sub'), receiveTimeout: RECEIVE_WATCHDOG_MS, ...this.options.socketOptions }
    let socket: Socket
    switch (this.options.type) {
      case 'router':
        // Mandatory with no send timeout: a send to a full or vanished peer fails at once (EAGAIN,
        // EHOSTUNREACH) instead of being dropped unseen or blocking every other peer.
        socket = new Router({ ...base, mandatory: true, sendTimeout: 0 })
        if (this.options.notifyPeers === true) (socket as unknown as RawOptions).setInt32Option(ZMQ_ROUTER_NOTIFY, NOTIFY_CONNECT_AND_DISCONNECT)
        break
      case 'dealer':
        socket = new Dealer(base)
        break
      case 'xpub':
        socket = new XPublisher(base)
        break
      case 'xsub':
        socket = new XSubscriber(base)
        break
      case 'sub':
        socket = new Subscriber(base)
        break
    }
    if (this.options.type === 'dealer' || this.options.type === 'sub' || this.options.type === 'xsub') this.watch(socket)
    return socket
  }

  /** Follows a connecting socket's monitor events. */
  private watch(socket: Socket): void {
    const events = socket.events
    const current = (): boolean => socket === this.socket && !this.isClosed
    events.on('handshake', ({ address }) => {
      if (!current()) return
      this.counters.connects++
      this.unrecovered.delete(address)
      this.justLost.delete(address)
      this.handshakeFailures.delete(address)
      if (this.handshakeFailures.size === 0) this.authFailure = undefined
      this.markReady(address)
    })
    events.on('disconnect', ({ address }) => {
      if (!current()) return
      this.counters.disconnects++
      // Only a connection that was up is "lost" (its first retry just the schedule); one whose handshake failed is a failed attempt.
      if (this.ready.delete(address)) this.justLost.add(address)
      // After a failed handshake the state stays what the failure said.
      if (this.ready.size === 0 && !this.handshakeFailures.has(address)) this.setState('connecting', `connection to ${address} lost`)
      // libzmq retries at once after an ordinary loss; silence means it gave this connection up.
      // Only connections this socket made can be made again; a bound socket's peers reconnect themselves.
      if (this.bound) return
      this.unrecovered.add(address)
      this.recoverTimer ??= setTimeout(() => this.recover(), this.options.recoverAfterMs ?? TRANSPORT_DEFAULTS.recoverAfterMs)
    })
    events.on('connect:retry', ({ address }) => {
      if (!current()) return
      this.unrecovered.delete(address)
      // libzmq says "retry" at once after every lost connection, when it schedules the reconnect: that
      // one is no failure (the peer may be back in a moment). A retry after an attempt is.
      if (this.justLost.delete(address)) return
      if (this.ready.size === 0) this.setState('failing', this.handshakeFailures.get(address) ?? `cannot connect to ${address}`)
    })
    events.on('handshake:error:protocol', ({ address, error }) => {
      if (!current()) return
      const mismatch = /MECHANISM_MISMATCH/.test(String((error as { code?: unknown }).code))
      if (mismatch) this.handshakeFailed(address, `security handshake with ${address} failed: one side uses CURVE and the other does not`, true)
      else this.handshakeFailed(address, `handshake with ${address} failed: ${error.message}`, false)
    })
    events.on('handshake:error:auth', ({ address }) => {
      if (current()) this.handshakeFailed(address, `${address} refused this client: its CURVE key is not allowed there`, true)
    })
    events.on('handshake:error:other', ({ address, error }) => {
      // With CURVE, a wrong server key shows as a broken pipe during the handshake.
      const curve = this.options.socketOptions?.['curveServerKey'] !== undefined
      if (current()) this.handshakeFailed(address, `handshake with ${address} failed: ${error.message}${curve ? " (is curve.serverKey the server's public key?)" : ''}`, curve)
    })
  }

  /**
   * Replaces a socket with a connection libzmq gave up on, keeping endpoints, options and the send
   * queue. Its other connections, if any, are made again too; `onState` reports the way back to ready.
   */
  private recover(): void {
    this.recoverTimer = undefined
    if (this.isClosed || this.unrecovered.size === 0) return
    this.unrecovered.clear()
    this.counters.recoveries++
    const old = this.socket
    this.ready.clear()
    this.socket = this.open()
    old.close()
    for (const endpoint of this.connected) this.socket.connect(endpoint)
    for (const endpoint of this.connected) if (endpoint.startsWith('inproc://')) this.markReady(endpoint)
    this.startLoop(this.socket)
    if (this.ready.size === 0) this.setState('connecting', 'reconnecting with a fresh socket')
  }

  /**
   * A handshake failed: the endpoint counts as failing with that reason (not merely "cannot connect");
   * `security` marks a refusal or mismatch of CURVE, which callers see as UNAUTHENTICATED.
   */
  private handshakeFailed(address: string, detail: string, security: boolean): void {
    this.handshakeFailures.set(address, detail)
    if (security) this.authFailure = detail
    if (this.ready.size === 0) this.setState('failing', detail)
  }

  private markReady(address: string): void {
    this.ready.add(address)
    this.setState('ready', `connected to ${address}`)
  }

  private setState(state: ConnectionState, detail: string): void {
    this.lastDetail = detail
    if (state === this.currentState) return
    this.currentState = state
    this.handlers.onState?.(state, detail)
  }

  private startLoop(socket: Socket): void {
    if (this.reading.has(socket)) return
    this.reading.add(socket)
    const loop = this.receive(socket)
    this.loops.add(loop)
    void loop.finally(() => this.loops.delete(loop))
  }

  private async receive(socket: Socket): Promise<void> {
    const notify = this.options.type === 'router' && this.options.notifyPeers === true
    while (!socket.closed && socket === this.socket) {
      let message: Buffer[]
      const asked = performance.now()
      try {
        message = (await socket.receive()) as Buffer[]
      } catch (err) {
        // The watchdog's timeout with nothing to read: ask again. Anything else ends the loop.
        if ((err as { code?: unknown }).code === 'EAGAIN' && !socket.closed) continue
        if (!socket.closed && socket === this.socket) this.report(err)
        return
      }
      if (socket !== this.socket) return
      if (performance.now() - asked >= RECEIVE_WATCHDOG_MS) this.counters.missedWakeups++
      if (notify) {
        if (message.length === 2 && message[1]!.length === 0) {
          this.onNotice(message[0]!)
          continue
        }
        // A peer can send an empty message itself, which reads as a notice (there is no telling
        // them apart): it only ends its own calls. Whatever it sends next shows it is still here.
        const id = message[0]
        if (id !== undefined && !this.peers.has(id.toString('latin1'))) this.onNotice(id)
      }
      this.counters.received++
      for (const frame of message) this.counters.receivedBytes += frame.length
      try {
        const pending = this.handlers.onMessage(message)
        if (pending !== undefined) await pending
      } catch (err) {
        this.report(err)
      }
    }
  }

  /** ROUTER_NOTIFY sends one empty message when a peer connects and another when it leaves. */
  private onNotice(routingId: Buffer): void {
    const key = routingId.toString('latin1')
    if (this.peers.delete(key)) this.handlers.onPeer?.(routingId, 'disconnected')
    else {
      this.peers.add(key)
      this.handlers.onPeer?.(routingId, 'connected')
    }
  }

  private report(err: unknown): void {
    this.counters.errors++
    this.handlers.onError?.(err)
  }
}
