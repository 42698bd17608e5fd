/**
 * Majordomo worker (RFC 7 MDP/0.1): one DEALER socket, one service, one request at a time.
 *
 * ```
 *  worker                                   broker
 *  [] MDPW01 0x01 <service>            ──►  READY (once per socket)
 *  [] MDPW01 0x02 <client> [] <body..> ◄──  REQUEST
 *  [] MDPW01 0x03 <client> [] <body..> ──►  REPLY
 *  [] MDPW01 0x04                      ◄─►  HEARTBEAT (every heartbeatMs, idle or busy)
 *  [] MDPW01 0x05                      ◄─►  DISCONNECT (then a new socket and READY again)
 * ```
 * Heartbeats run on a timer, not in the receive path, so a worker whose handler awaits for a long
 * time keeps heartbeating and is not expired; it also heartbeats once as soon as a request arrives,
 * which tells a zrpc broker that this worker beats while busy (so its death while busy is noticed).
 * After `liveness` silent intervals while idle it drops the socket, waits `reconnectMs` and starts
 * over on a new socket (new routing id), as the reference does. Broker silence is not counted while a
 * request is being handled: the reference broker heartbeats idle workers only.
 * For several requests at once, run several workers: each is its own socket and its own MDP worker.
 */
import { Dealer } from 'zeromq'
import { Command, HEARTBEAT_LIVENESS, HEARTBEAT_MS, SendQueue, addressedFrames, parseWorkerMessage, toFrames, workerFrames } from './majordomo-protocol.js'
import type { Frames, LogFn } from './majordomo-protocol.js'

/** How long close() lets a DISCONNECT try to leave before the socket goes. */
const DISCONNECT_LINGER_MS = 200

export interface WorkerOptions {
  /** Heartbeat interval, ms (default 2500). Must match the broker's. */
  heartbeatMs?: number
  /** Silent intervals before the broker counts as dead (default 3). */
  liveness?: number
  /** Wait before reconnecting after the broker went silent (default: heartbeatMs). */
  reconnectMs?: number
  /** Send DISCONNECT on close (default true). Set false against the Python reference broker, which crashes on it. */
  sendDisconnectOnClose?: boolean
  /** ZMQ_MAXMSGSIZE for the worker's socket. */
  maxMessageSize?: number
  /** Log lines (`I:`/`W:`/`E:`); off by default. */
  log?: LogFn
}

/** One request from a client; answer it once with `reply()`. */
export interface MajordomoRequest {
  /** The client's routing id, passed through byte for byte. */
  readonly clientId: Buffer
  readonly body: Buffer[]
  /** Sends the REPLY. Resolves false if it could not be sent (worker closed or reconnected since). */
  reply(body: Frames): Promise<boolean>
}

/**
 * A Majordomo worker for one service.
 *
 * Why: the protocol's bookkeeping (READY, heartbeats both ways, reconnect on silence or DISCONNECT)
 * behind a loop a person can read: take a request, reply, repeat.
 *
 * @example
 * const worker = new MajordomoWorker('tcp://127.0.0.1:5555', 'echo')
 * for await (const request of worker) await request.reply(request.body)
 * // elsewhere: await worker.close()
 */
export class MajordomoWorker implements AsyncIterable<MajordomoRequest> {
  private socket: Dealer | undefined
  private out: SendQueue | undefined
  private liveness = 0
  private readonly heartbeatMs: number
  private readonly maxLiveness: number
  private readonly timer: NodeJS.Timeout
  private reconnectTimer: NodeJS.Timeout | undefined
  private readonly inbox: MajordomoRequest[] = []
  private waiter: ((req: MajordomoRequest | null) => void) | undefined
  private closed = false
  /** A request has been delivered and not yet answered. */
  private working = false
  /** How many times this worker has connected and sent READY. */
  connects = 0

  constructor(
    readonly endpoint: string,
    readonly service: string,
    private readonly opts: WorkerOptions = {},
  ) {
    this.heartbeatMs = opts.heartbeatMs ?? HEARTBEAT_MS
    this.maxLiveness = opts.liveness ?? HEARTBEAT_LIVENESS
    this.connect()
    this.timer = setInterval(() => this.tick(), this.heartbeatMs)
  }

  /** Waits for the next request; null once the worker is closed. One call at a time. */
  receive(): Promise<MajordomoRequest | null> {
    const next = this.inbox.shift()
    if (next) return Promise.resolve(next)
    if (this.closed) return Promise.resolve(null)
    if (this.waiter) return Promise.reject(new Error('MajordomoWorker.receive() is already pending'))
    return new Promise((resolve) => (this.waiter = resolve))
  }

  /** Requests until close(). Leaving the loop early does not close the worker. */
  async *[Symbol.asyncIterator](): AsyncIterator<MajordomoRequest> {
    for (let req = await this.receive(); req; req = await this.receive()) yield req
  }

  /** Stops: DISCONNECT (unless turned off), close the socket, end receive() and iteration. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearInterval(this.timer)
    clearTimeout(this.reconnectTimer)
    const { socket, out } = this
    this.socket = undefined
    if (socket && out && (this.opts.sendDisconnectOnClose ?? true)) {
      socket.linger = DISCONNECT_LINGER_MS
      await out.push(workerFrames(Command.Disconnect))
    }
    socket?.close()
    const waiter = this.waiter
    this.waiter = undefined
    waiter?.(null)
  }

  private connect(): void {
    this.reconnectTimer = undefined
    if (this.closed) return
    const socket = new Dealer({ linger: 0, ...(this.opts.maxMessageSize === undefined ? {} : { maxMessageSize: this.opts.maxMessageSize }) })
    socket.connect(this.endpoint)
    const out = new SendQueue(socket)
    this.socket = socket
    this.out = out
    this.liveness = this.maxLiveness
    this.working = false
    this.connects++
    this.opts.log?.(`I: connecting to broker at ${this.endpoint} for ${this.service}`)
    void out.push(workerFrames(Command.Ready, Buffer.from(this.service)))
    void this.read(socket, out)
  }

  private drop(): void {
    this.socket?.close()
    this.socket = undefined
  }

  private tick(): void {
    if (!this.socket || !this.out) return
    if (!this.working && --this.liveness <= 0) {
      this.opts.log?.(`W: broker silent for ${this.maxLiveness} heartbeats, reconnecting`)
      this.drop()
      this.reconnectTimer = setTimeout(() => this.connect(), this.opts.reconnectMs ?? this.heartbeatMs)
      return
    }
    void this.out.push(workerFrames(Command.Heartbeat))
  }

  private async read(socket: Dealer, out: SendQueue): Promise<void> {
    try {
      for await (const frames of socket) {
        if (socket !== this.socket) break
        this.liveness = this.maxLiveness
        const msg = parseWorkerMessage(frames)
        switch (msg.kind) {
          case 'request': {
            const { client, body } = msg
            this.working = true
            void out.push(workerFrames(Command.Heartbeat))
            this.deliver({ clientId: client, body, reply: (reply) => this.reply(socket, out, client, reply) })
            break
          }
          case 'heartbeat':
            break
          case 'disconnect':
            this.opts.log?.('I: broker sent DISCONNECT, reconnecting')
            this.drop()
            this.connect()
            return
          case 'ready':
          case 'reply':
          case 'invalid':
            this.opts.log?.(`W: invalid message from broker (${msg.kind})`)
            break
        }
      }
    } catch (err) {
      if (!socket.closed) this.opts.log?.(`E: worker receive: ${String(err)}`)
    }
  }

  private deliver(req: MajordomoRequest): void {
    const waiter = this.waiter
    this.waiter = undefined
    if (waiter) waiter(req)
    else this.inbox.push(req)
  }

  private async reply(socket: Dealer, out: SendQueue, client: Buffer, body: Frames): Promise<boolean> {
    this.working = false
    // A reply on a newer socket would come from a worker the broker does not know; the old request is gone.
    if (socket !== this.socket) {
      this.opts.log?.('W: reply dropped: reconnected since the request arrived')
      return false
    }
    return out.push(addressedFrames(Command.Reply, client, toFrames(body)))
  }
}
