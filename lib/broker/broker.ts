/**
 * Broker: a Majordomo broker (7/MDP) that carries zrpc calls and answers for itself in zrpc terms
 * when it cannot route one.
 *
 * ```
 *  client ──[id][] MDPC01 svc frame──►  ┌──────────────┐ ──[w][] MDPW01 0x02 id [] frame──► worker
 *  client ◄─[id][] MDPC01 svc frame───  │ ROUTER       │ ◄─[w][] MDPW01 0x03 id [] frame─── worker
 *                                       │ queues.ts    │ ◄─[w][] MDPW01 0x01 svc  (READY)
 *                                       │ workers.ts   │ ◄─►[w][] MDPW01 0x04     (HEARTBEAT)
 *  zrpc.broker ──► admin-service.ts     └──────────────┘ ◄─►[w][] MDPW01 0x05     (DISCONNECT)
 * ```
 * A client's frame may hold several REQUESTs for its service (zrpc clients join the calls of one
 * turn once `mmi.zrpc` said this broker splits them); each is parsed once on arrival with the
 * broker's size limit, and unreadable ones are refused there (INVALID_ARGUMENT if an id is readable,
 * else dropped and counted). Credit workers (docs/protocol.md) take many requests at once: the
 * requests of a burst are dealt to them in turn, and those for one worker from one client message
 * leave as one frame; their answers come back joined and go on to the client as they came. Queues are bounded in
 * requests and bytes, per service and in total, and so is the number of names waiting with no
 * worker. Before handing a request to a worker the broker rewrites timeoutMs to the budget left, and
 * it drops requests whose budget is gone. `zrpc.broker` is served in process: no peer may READY as it.
 *
 * @example
 * const broker = new Broker({ heartbeatMs: 2500, liveness: 3, maxQueuedBytes: 256 * 1024 * 1024 })
 * const [endpoint] = await broker.bind('tcp://127.0.0.1:*')
 */
import { Command, MDPC01, MMI_PREFIX, isHeader, parseClientMessage, parseWorkerMessage } from '../../patterns/majordomo-protocol.js'
import type { CborLimits } from '../codec/cbor.js'
import { Kind, MAX_ID, encodeAuth, encodeCancel, encodeError, encodeRequest, readEnvelope, readEnvelopeWithCbor, scanFrame, type FrameScan, type RequestEnvelope } from '../codec/envelope.js'
import { RpcError, type StatusCode } from '../errors.js'
import type { Dispatcher } from '../rpc/dispatcher.js'
import { DEFAULT_MAX_MESSAGE_SIZE } from '../rpc/limits.js'
import { MMI_ZRPC, addressedHead, clientHead, commandFrames, readCredit } from '../rpc/mdp-frames.js'
import { bytesOf, type Body } from '../transport/send-queue.js'
import { TransportSocket } from '../transport/socket.js'
import { BrokerAdmin } from './admin.js'
import { adminDispatcher } from './admin-service.js'
import { BrokerQueue, queueDispatcher, type SubmitParams, type TicketView } from './queue-service.js'
import { TICKET_DEFAULTS, Tickets, newTicketId, type Ticket, type TicketOutcome } from './tickets.js'
import { DurableCalls, type DurableEntry, type DurableOptions, type DurableStats } from './durable.js'
import type { CurveOptions } from '../transport/curve.js'
import { SocketSecurity } from '../transport/security.js'
import type { ZapStats } from '../transport/zap.js'
import { answerOf, brokerLimits, checkRequest, isAnswerTo, isZrpcBody } from './intake.js'
import { peekHeader } from '../codec/envelope-heads.js'
import { RequestQueues, type QueuedRequest } from './queue.js'
import { WorkerRegistry, type Worker, type WorkerLeftReason } from './workers.js'
import { BrokerCounters, type BrokerStats, type ServiceStats } from './stats.js'

export type { BrokerStats, ServiceStats, WorkerLeftReason }

/** Defaults of every {@link BrokerOptions} bound (docs/limits.md lists them). */
export const BROKER_DEFAULTS = {
  heartbeatMs: 2500,
  liveness: 3,
  maxQueuePerService: 10_000,
  maxQueuedBytesPerService: 64 * 1024 * 1024,
  maxQueuedBytes: 256 * 1024 * 1024,
  maxUnknownServices: 1000,
} as const

/** Requests a service may have waiting in the broker unless configured. */
export const DEFAULT_MAX_QUEUE_PER_SERVICE = BROKER_DEFAULTS.maxQueuePerService

export interface BrokerOptions {
  /** Heartbeat interval in ms (default 2500). zrpc workers follow the broker's beats; other MDP workers must match it. */
  readonly heartbeatMs?: number
  /** Missed heartbeats before a worker counts as dead (default 3). */
  readonly liveness?: number
  /** Requests queued per service; past it callers get RESOURCE_EXHAUSTED `{ notStarted: true }` (default 10 000). */
  readonly maxQueuePerService?: number
  /** Bytes of requests queued per service; past it RESOURCE_EXHAUSTED `{ notStarted: true }` (default 64 MiB). */
  readonly maxQueuedBytesPerService?: number
  /** Bytes of requests queued across all services; past it RESOURCE_EXHAUSTED `{ notStarted: true }` (default 256 MiB). */
  readonly maxQueuedBytes?: number
  /** Service names that may wait with no worker; a request for a new one past it gets UNAVAILABLE `{ notStarted: true }` at once (default 1000). */
  readonly maxUnknownServices?: number
  /**
   * How long a request may wait for a service that has no live worker before the caller gets
   * UNAVAILABLE `{ notStarted: true }` (0: at once). Default heartbeatMs x liveness.
   */
  readonly requestExpiryMs?: number
  /** Largest message accepted, in bytes (default 4 MiB); bigger senders are disconnected by libzmq. Also the parse limit. */
  readonly maxMessageSize?: number
  /**
   * Deferred calls (`zrpc.queue`, `client.queue(Service)`): tickets held at once (default 100 000),
   * bytes of uncollected results kept (default 64 MiB), and how long a finished ticket is kept
   * uncollected (default 1 hour). A submit past either bound is refused with RESOURCE_EXHAUSTED.
   */
  readonly tickets?: Partial<{ maxTickets: number; maxResultBytes: number; retentionMs: number }>
  /**
   * Keep every accepted call on disk in `dir` (docs/protocol.md, "The durable broker"): a call is
   * queued only once it is written (fsync per `sync`, default 'always'), its answer is kept until its
   * client takes it, and a broker started again on the same directory goes on where it stopped.
   * Streams are not kept. `zrpc broker --durable DIR`.
   */
  readonly durable?: DurableOptions
  /**
   * CURVE for clients and workers alike (docs/security.md): `{ publicKey, secretKey, allow? }`, Z85
   * keys; `allow`, the client and worker public keys let in (or `{ file }`); omitted, anyone who knows
   * the broker's public key.
   */
  readonly curve?: CurveOptions
  /** Called for each peer the allow list refuses, with its key (Z85) and address. */
  readonly onRefused?: (publicKey: string, address: string) => void
}

/** A worker joining or leaving, as {@link Broker.onWorkerEvent} reports it. */
export interface BrokerWorkerEvent {
  readonly kind: 'joined' | 'left'
  readonly service: string
  /** Routing id in hex. */
  readonly identity: string
  readonly reason?: WorkerLeftReason
}

const ADMIN = BrokerAdmin.name
const QUEUE = BrokerQueue.name
/**
 * The broker as the client of deferred calls: a routing id no peer can have (libzmq's own ids are 5
 * bytes from 0x00, and an id a peer sets cannot start with 0x00), so their answers are told apart.
 */
const TICKETS_CLIENT = Buffer.from([0x00, 0x7a, 0x71, 0x75, 0x65, 0x75, 0x65])
const TICKETS_KEY = TICKETS_CLIENT.toString('latin1')
/** Budget of a submitted call that names none, from submission. */
const DEFAULT_SUBMIT_TIMEOUT_MS = 60 * 60 * 1000
// `broker` marks the broker's own refusals: asking the same broker again at once would be refused again.
const NOT_STARTED = { notStarted: true, broker: true } as const
/** Envelopes of one client frame read per event-loop turn; a frame of more is read over several turns. */
const ENVELOPES_PER_TURN = 256
/** Heads kept per service name and per client; past this a cache starts over. */
const MAX_CACHED_HEADS = 1024
/** Clients remembered as taking joined answers; past this the set starts over (they get one answer per message until they ask again). */
const MAX_JOINERS = 100_000

/** Where the requests of one client message come from and go back to. */
interface Route {
  readonly clientId: Buffer
  readonly clientKey: string
  readonly service: string
  readonly toWorker: readonly Buffer[]
}

export class Broker {
  private readonly socket: TransportSocket
  private readonly queues: RequestQueues
  private readonly workers: WorkerRegistry
  private readonly counters = new BrokerCounters()
  private readonly admin: Dispatcher
  private readonly queueService: Dispatcher
  private readonly tickets: Tickets
  /** Ids of the broker's own REQUESTs for deferred calls. */
  private lastTicketCallId = 0
  /** The durable record, once opened (first bind). */
  private durable: DurableCalls | undefined
  private opening: Promise<void> | undefined
  /** Clients (routing ids in latin1) whose connection went: their durable answers wait for them to come back. */
  private readonly gone = new Set<string>()
  /** CURVE for the broker's socket (and its allow list), transport/security.ts. */
  private readonly security: SocketSecurity
  /** Clients (routing ids, latin1) that proved their CURVE key (AUTH): workers are told before their requests. */
  private readonly clientKeys = new Map<string, Buffer>()
  private readonly listeners = new Set<(event: BrokerWorkerEvent) => void>()
  private readonly limits: CborLimits
  private readonly heartbeatMs: number
  private readonly requestExpiryMs: number
  /** `[] MDPC01 <service>` per service: one array per name, so answers to one client join. */
  private readonly clientHeads = new Map<string, readonly Buffer[]>()
  /** Clients (routing ids in latin1) that asked mmi.zrpc: only they get several answers in one message. */
  private readonly joiners = new Set<string>()
  /** `[] MDPW01 0x02 <client> []` per client: one array per client, so its requests for one worker in a turn join. */
  private readonly workerHeads = new Map<string, readonly Buffer[]>()
  /** Ids the broker gives plain (opaque) requests, to hold them at a worker like the others. */
  private lastOpaqueId = 0
  private heartbeatTimer: NodeJS.Timeout | undefined
  private sweepTimer: NodeJS.Timeout | undefined
  private closed: Promise<void> | undefined

  constructor(private readonly options: BrokerOptions = {}) {
    this.heartbeatMs = options.heartbeatMs ?? BROKER_DEFAULTS.heartbeatMs
    const liveness = options.liveness ?? BROKER_DEFAULTS.liveness
    this.requestExpiryMs = options.requestExpiryMs ?? this.heartbeatMs * liveness
    const maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE
    this.limits = brokerLimits(maxMessageSize)
    this.queues = new RequestQueues({
      maxQueuePerService: options.maxQueuePerService ?? BROKER_DEFAULTS.maxQueuePerService,
      maxQueuedBytesPerService: options.maxQueuedBytesPerService ?? BROKER_DEFAULTS.maxQueuedBytesPerService,
      maxQueuedBytes: options.maxQueuedBytes ?? BROKER_DEFAULTS.maxQueuedBytes,
      maxUnknownServices: options.maxUnknownServices ?? BROKER_DEFAULTS.maxUnknownServices,
    })
    this.workers = new WorkerRegistry(this.heartbeatMs * liveness)
    this.admin = adminDispatcher({ overview: () => this.overview(), disconnectWorker: (identity) => this.disconnectWorker(identity), tickets: () => this.tickets.list() })
    this.tickets = new Tickets({ ...TICKET_DEFAULTS, ...options.tickets })
    this.queueService = queueDispatcher({
      submit: (params) => this.submit(params),
      status: (ticket) => view(this.tickets.get(ticket)),
      collect: (ticket, waitMs, signal) => this.collect(ticket, waitMs, signal),
      cancel: (ticket) => this.cancelTicket(ticket),
    })
    this.security = SocketSecurity.for(options.curve, 'Broker', 'bind', options.onRefused)
    this.socket = new TransportSocket(
      // handover: a client that reconnects with its fixed routing id (to a durable broker) takes its place at once.
      { type: 'router', maxMessageSize, notifyPeers: true, socketOptions: { handover: true, ...this.security.socketOptions } },
      {
        onMessage: (frames) => this.onMessage(frames),
        onPeer: (id, event) => this.onPeer(id, event),
      },
    )
  }

  /** Binds one or more endpoints and returns them resolved (ephemeral ports filled in). */
  async bind(endpoints: string | readonly string[]): Promise<string[]> {
    // A durable broker reads its record back before it listens: restored calls go first.
    if (this.options.durable !== undefined) await (this.opening ??= this.openDurable(this.options.durable))
    // The allow list is with the ZAP handler before the socket listens: nobody gets in unchecked.
    await this.security.ready()
    const resolved: string[] = []
    for (const endpoint of typeof endpoints === 'string' ? [endpoints] : endpoints) resolved.push(await this.socket.bind(endpoint))
    for (const endpoint of resolved) this.security.bound(endpoint)
    this.heartbeatTimer ??= setInterval(() => this.beat(), this.heartbeatMs)
    // Deadlines and expiry are checked at least as often as the expiry allows, so a short requestExpiryMs is honoured.
    this.sweepTimer ??= setInterval(() => this.sweep(), Math.max(10, Math.min(this.heartbeatMs, this.requestExpiryMs || this.heartbeatMs)))
    return resolved
  }

  /** Calls `listener` for every worker that joins or leaves; returns a function that stops it. */
  onWorkerEvent(listener: (event: BrokerWorkerEvent) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Asks a worker to finish its request and disconnect. False if no such worker. */
  disconnectWorker(identity: string): boolean {
    const worker = this.workers.get(identity)
    if (worker === undefined) return false
    this.workers.drain(worker)
    if (worker.holding === 0) this.removeWorker(worker, 'kicked', true)
    return true
  }

  stats(): BrokerStats & { durable?: DurableStats; tickets: { held: number; resultBytes: number }; auth?: ZapStats } {
    const t = this.socket.counters
    return {
      ...this.counters.snapshot(this.queues, this.workers),
      transport: { ...t, send: { ...t.send } },
      tickets: { held: this.tickets.size, resultBytes: this.tickets.bytes },
      ...(this.durable !== undefined && { durable: this.durable.stats }),
      ...(this.security.stats !== undefined && { auth: this.security.stats }),
    }
  }

  /**
   * Stops serving: queued callers get UNAVAILABLE `{ notStarted: true }`, except on a durable broker,
   * which keeps them on disk for its next start. Workers notice by heartbeat and re-register with
   * whatever binds next.
   */
  close(): Promise<void> {
    this.closed ??= (async () => {
      clearInterval(this.heartbeatTimer)
      clearInterval(this.sweepTimer)
      for (const service of [...this.queues.services()]) {
        for (const req of this.queues.removeWhere(service, () => true)) {
          // A durable broker keeps its accepted calls for the next start: their callers wait for it.
          if (req.opaque !== undefined || this.durable?.find(req.clientId === TICKETS_CLIENT ? null : req.clientId, req.request.id) !== undefined) continue
          this.answer(req.clientId, service, req.request.id, 'UNAVAILABLE', 'the broker is shutting down', NOT_STARTED)
        }
      }
      await this.admin.close(100)
      await this.queueService.close(100)
      await this.opening?.catch(() => undefined)
      await this.durable?.close().catch(() => undefined)
      await this.security.close()
      await this.socket.close(100)
    })()
    return this.closed
  }

  private onMessage([sender, ...frames]: Buffer[]): Promise<void> | void {
    if (sender === undefined) return
    if (isHeader(frames[1], MDPC01)) return this.onClient(sender, frames)
    this.onWorker(sender, frames)
  }

  private onClient(clientId: Buffer, frames: Buffer[]): Promise<void> | void {
    // A client heard from is connected, whether or not its connect notice came first.
    if (this.gone.size > 0) this.clientBack(clientId.toString('latin1'))
    const msg = parseClientMessage(frames)
    if ('invalid' in msg) return this.counters.drop(msg.invalid)
    const { service, body } = msg
    if (service.startsWith(MMI_PREFIX)) return this.onMmi(clientId, service, body)
    if (!isZrpcBody(body)) return this.onOpaque(clientId, service, body)
    const frame = body[0]!
    const scan = scanFrame(frame, this.limits)
    if (scan.kind === 'malformed') return this.counters.drop('unreadable')
    const clientKey = clientId.toString('latin1')
    const route: Route = { clientId, clientKey, service, toWorker: cached(this.workerHeads, clientKey, () => addressedHead(Command.Request, clientId)) }
    if (scan.ends.length <= ENVELOPES_PER_TURN) {
      this.intake(route, frame, scan, 0, scan.ends.length)
      return this.dispatch(service)
    }
    return this.intakeInTurns(route, frame, scan)
  }

  /** A frame of many envelopes: read a turn's worth at a time, so other peers are served in between. */
  private async intakeInTurns(route: Route, frame: Buffer, scan: FrameScan): Promise<void> {
    for (let from = 0; from < scan.ends.length; from += ENVELOPES_PER_TURN) {
      if (from > 0) await new Promise((resolve) => setImmediate(resolve))
      this.intake(route, frame, scan, from, Math.min(scan.ends.length, from + ENVELOPES_PER_TURN))
      this.dispatch(route.service)
    }
  }

  /** Queues (or answers) envelopes `from` to `to` of a client's frame. */
  private intake(route: Route, frame: Buffer, scan: FrameScan, from: number, to: number): void {
    const { clientId, clientKey, service, toWorker } = route
    const receivedAt = Date.now()
    for (let i = from; i < to; i++) {
      const intake = checkRequest(service, readEnvelope(frame, scan, i))
      if (intake.ok === false) {
        if (intake.id === undefined) this.counters.drop('unreadable')
        else this.refuse(clientId, service, intake.id, 'invalid', 'INVALID_ARGUMENT', intake.reason)
        continue
      }
      if (intake.ok === 'auth') {
        this.authenticate(clientKey, intake.publicKey, intake.proof)
        continue
      }
      if (intake.ok === 'follow-up') {
        this.followUp(route, intake.id, intake.cancel, frame.subarray(i === 0 ? 0 : scan.ends[i - 1]!, scan.ends[i]!))
        continue
      }
      const { request } = intake
      if (service === ADMIN || service === QUEUE) {
        const served = service === ADMIN ? this.admin : this.queueService
        served.handle(request, clientId.toString('hex'), (out) => this.toClient(clientId, service, out))
        continue
      }
      const start = i === 0 ? 0 : scan.ends[i - 1]!
      const end = scan.ends[i]!
      // Spelled out, not spread from the route: a spread here cost a tenth of the broker's time.
      const req: QueuedRequest = { clientId, clientKey, toWorker, service, request, frame: start === 0 && end === frame.length ? frame : frame.subarray(start, end), receivedAt }
      if (request.timeoutMs === 0) {
        this.late(req)
        continue
      }
      if (this.durable !== undefined && request.window === undefined) {
        this.acceptDurable(req)
        continue
      }
      this.enqueue(req)
    }
  }

  /**
   * Durable: the call is written before it is queued. A call already on record (a client sending its
   * pending calls again after a reconnect) is not taken twice: its answer goes again if it has one.
   */
  private acceptDurable(req: QueuedRequest): void {
    const durable = this.durable!
    const known = durable.find(req.clientId, req.request.id)
    if (known !== undefined) {
      durable.resends++
      if (known.call.st === 2 && known.call.a !== undefined) this.deliverStored(known)
      return
    }
    const { request } = req
    const { entry, written } = durable.accept(
      { c: req.clientId, s: req.service, f: req.frame, at: req.receivedAt, dl: req.receivedAt + request.timeoutMs, k: request.key !== undefined, st: 0 },
      request.id,
    )
    written.then(
      () => {
        this.enqueue(req)
        this.dispatch(req.service)
      },
      (err: unknown) => this.settle(entry, encodeError(request.id, 'UNAVAILABLE', `the broker could not write the call to disk: ${(err as Error).message}`, NOT_STARTED)),
    )
  }

  /** An answer for a durable call: kept on record, then sent to its client if it is connected. */
  private settle(entry: DurableEntry, answer: Uint8Array): void {
    this.durable!.answered(entry, answer)
    if (entry.call.c === null) return
    if (this.gone.has(keyFor(entry.call.c))) return
    this.deliverStored(entry)
  }

  /** Sends a durable call's answer to its client and forgets the call. */
  private deliverStored(entry: DurableEntry): void {
    const { c, s: service, a } = entry.call
    if (c === null || a === undefined) return
    const clientId = Buffer.from(c)
    this.socket.pushWithHead(this.clientHead(service), Buffer.from(a), clientId, this.joiners.has(clientId.toString('latin1')))
    this.durable!.deliveredNow(entry, Date.now())
  }

  /**
   * Reads the durable record back (before the broker listens): deferred calls become tickets again,
   * answered calls wait for their clients, queued ones (and idempotent ones that were at a worker)
   * are queued again, and a call that was at a worker and must not run twice is answered as lost.
   */
  private async openDurable(options: DurableOptions): Promise<void> {
    const durable = await DurableCalls.open(options)
    this.durable = durable
    const now = Date.now()
    for (const entry of [...durable.entries()]) {
      const { call } = entry
      const env = readEnvelopeWithCbor(call.f)
      if (env.kind !== Kind.Request) {
        durable.forget(entry)
        continue
      }
      const clientId = call.c === null ? TICKETS_CLIENT : Buffer.from(call.c)
      const clientKey = clientId.toString('latin1')
      if (call.c === null) {
        this.lastTicketCallId = Math.max(this.lastTicketCallId, env.id)
        const ticket = this.tickets.create(env.service, env.method, env.id, call.at, call.t)
        if (call.st === 2 && call.a !== undefined) this.ticketAnswer(call.a)
        else if (ticket.outcome === undefined && call.st === 1 && !call.k) this.ticketAnswer(lostAtRestart(env.id))
      } else this.gone.add(clientKey) // its answers wait until it connects
      if (call.st === 2) continue
      if (call.st === 1 && !call.k) {
        if (call.c !== null) durable.answered(entry, lostAtRestart(env.id))
        continue
      }
      const left = call.dl - now
      if (left <= 0) {
        const expired = encodeError(env.id, 'DEADLINE_EXCEEDED', 'deadline passed while the broker was down')
        if (call.c === null) this.ticketAnswer(expired)
        else durable.answered(entry, expired)
        continue
      }
      const req: QueuedRequest = { clientId, clientKey, toWorker: cached(this.workerHeads, clientKey, () => addressedHead(Command.Request, clientId)), service: call.s, request: env, frame: Buffer.from(call.f), receivedAt: call.at }
      this.enqueue(req)
    }
  }

  /**
   * A deferred call: queued with the broker as its client; the ticket is given once it is accepted.
   * Refused (with the broker's bounds' reasons) like a call, and for the broker's own service names.
   */
  private submit(params: SubmitParams): Promise<string> {
    const { service, method, timeoutMs = DEFAULT_SUBMIT_TIMEOUT_MS, metadata, idempotent } = params
    if (service === ADMIN || service === QUEUE || service.startsWith(MMI_PREFIX)) return Promise.reject(new RpcError('INVALID_ARGUMENT', `${service} cannot take deferred calls`))
    const full = this.tickets.refusal()
    if (full !== undefined) return Promise.reject(new RpcError('RESOURCE_EXHAUSTED', full, NOT_STARTED))
    const id = ++this.lastTicketCallId
    const ticketId = newTicketId()
    const key = idempotent === true ? Buffer.from(ticketId, 'hex') : undefined
    const frame = encodeRequest(id, service, method, timeoutMs, metadata ?? null, params.params, undefined, key)
    const request: RequestEnvelope = { kind: Kind.Request, id, service, method, timeoutMs, metadata: metadata ?? null, params: params.params, ...(key !== undefined && { key }) }
    const req: QueuedRequest = { clientId: TICKETS_CLIENT, clientKey: TICKETS_KEY, toWorker: cached(this.workerHeads, TICKETS_KEY, () => addressedHead(Command.Request, TICKETS_CLIENT)), service, request, frame, receivedAt: Date.now() }
    const queue = (): string => {
      let refused: RpcError | undefined
      this.enqueue(req, (code, message, details) => (refused = new RpcError(code, message, details)))
      if (refused !== undefined) throw refused
      this.tickets.create(service, method, id, req.receivedAt, ticketId)
      this.dispatch(service)
      return ticketId
    }
    if (this.durable === undefined) {
      try {
        return Promise.resolve(queue())
      } catch (err) {
        return Promise.reject(err)
      }
    }
    // Durable: the ticket is given once the call is on disk.
    const { entry, written } = this.durable.accept({ c: null, s: service, f: frame, at: req.receivedAt, dl: req.receivedAt + timeoutMs, k: key !== undefined, st: 0, t: ticketId }, id)
    return written.then(
      () => {
        try {
          return queue()
        } catch (err) {
          this.durable?.forget(entry)
          throw err
        }
      },
      (err: unknown) => {
        this.durable?.forget(entry)
        throw new RpcError('UNAVAILABLE', `the broker could not write the call to disk: ${(err as Error).message}`, NOT_STARTED)
      },
    )
  }

  /** The ticket's view, waiting up to `waitMs` for its end; a finished ticket is forgotten once collected. */
  private async collect(id: string, waitMs: number, signal: AbortSignal): Promise<TicketView> {
    const ticket = this.tickets.get(id)
    if (ticket !== undefined && ticket.outcome === undefined && waitMs > 0 && !signal.aborted) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer)
          ticket.waiters.delete(done)
          signal.removeEventListener('abort', done)
          resolve()
        }
        const timer = setTimeout(done, waitMs)
        ticket.waiters.add(done)
        signal.addEventListener('abort', done, { once: true })
      })
    }
    const seen = view(this.tickets.get(id))
    if (ticket !== undefined && ticket.outcome !== undefined) this.forgetTicket(ticket)
    return seen
  }

  /** Cancels a ticket's call: out of the queue, or a CANCEL to the worker running it. False once it has ended. */
  private cancelTicket(id: string): boolean {
    const ticket = this.tickets.get(id)
    if (ticket === undefined || ticket.outcome !== undefined) return false
    const cancelled: TicketOutcome = { ok: false, code: 'CANCELLED', message: 'cancelled by ticket', details: null }
    const stored = this.durable?.find(null, ticket.callId)
    if (stored !== undefined) this.durable!.answered(stored, encodeError(ticket.callId, 'CANCELLED', 'cancelled by ticket'))
    if (this.queues.cancel(ticket.service, TICKETS_KEY, ticket.callId)) {
      this.touch(ticket.service)
      this.tickets.finish(ticket, 'cancelled', cancelled, Date.now())
      return true
    }
    const worker = this.workers.holder(ticket.service, TICKETS_KEY, ticket.callId)
    if (worker?.extended === true) {
      this.socket.pushWithHead(cached(this.workerHeads, TICKETS_KEY, () => addressedHead(Command.Request, TICKETS_CLIENT)), encodeCancel(ticket.callId), worker.id, true)
    }
    // The worker answers CANCELLED (a zrpc worker) or its result (a plain one, which cannot be told): the ticket ends cancelled either way.
    this.tickets.finish(ticket, 'cancelled', cancelled, Date.now())
    return true
  }

  /** A ticket collected or past its retention: gone, from disk too. */
  private forgetTicket(ticket: Ticket): void {
    const stored = this.durable?.find(null, ticket.callId)
    if (stored !== undefined) this.durable!.forget(stored)
    this.tickets.remove(ticket)
  }

  /** An answer to one of the broker's own calls: it ends its ticket. */
  private ticketAnswer(envelope: Uint8Array): void {
    const env = readEnvelopeWithCbor(envelope)
    if (env.kind !== Kind.Reply && env.kind !== Kind.Error) return
    const ticket = this.tickets.byCallId(env.id)
    if (ticket === undefined) return
    const stored = this.durable?.find(null, env.id)
    if (stored !== undefined) this.durable!.answered(stored, Uint8Array.prototype.slice.call(envelope))
    const now = Date.now()
    if (env.kind === Kind.Reply) return this.tickets.finish(ticket, 'done', { ok: true, result: Uint8Array.prototype.slice.call(env.result) }, now)
    const state = env.code === 'CANCELLED' ? 'cancelled' : env.code === 'DEADLINE_EXCEEDED' ? 'expired' : 'failed'
    this.tickets.finish(ticket, state, { ok: false, code: env.code, message: env.message, details: env.details }, now)
  }

  /**
   * A plain 7/MDP request (its body is not zrpc): queued and routed unopened, as the reference broker
   * does, to a plain MDP worker of the service, whose one reply goes back as it came. The broker
   * cannot answer such a client in its words, so what it refuses (bounds, no worker in time) it
   * drops and counts (`rejected.opaque-*`).
   */
  private onOpaque(clientId: Buffer, service: string, body: readonly Buffer[]): void {
    if (service === ADMIN || service === QUEUE || body.length === 0) return this.counters.drop('unreadable')
    const clientKey = clientId.toString('latin1')
    const id = ++this.lastOpaqueId
    // `frame` is what the queue's byte bounds count; the frames go on as they came.
    const frame = body.length === 1 ? body[0]! : Buffer.concat(body as Buffer[])
    const request: RequestEnvelope = { kind: Kind.Request, id, service, method: '', timeoutMs: MAX_ID, metadata: null, params: EMPTY }
    const req: QueuedRequest = { clientId, clientKey, toWorker: cached(this.workerHeads, clientKey, () => addressedHead(Command.Request, clientId)), service, request, frame, receivedAt: Date.now(), opaque: body }
    const refusal = this.queues.add(req, this.workers.count(service) > 0, this.counters.workerless.size)
    if (refusal !== undefined) return this.counters.reject(`opaque-${refusal}`)
    this.counters.service(service).requests++
    this.touch(service)
    this.dispatch(service)
  }

  /** A client's AUTH: kept if its proof holds, so the workers serving it see its key (ctx.peer.publicKey). */
  private authenticate(clientKey: string, publicKey: Uint8Array, proof: Uint8Array): void {
    if (this.security.verify(publicKey, proof) === undefined) return this.counters.drop('bad-auth')
    if (this.clientKeys.size >= MAX_JOINERS) this.clientKeys.clear()
    this.clientKeys.set(clientKey, Buffer.from(publicKey))
    // A client may come back with another key: workers hear again.
    for (const worker of this.workers.all()) worker.told.delete(clientKey)
  }

  /** Before a client's first request to a credit worker: the key the broker authenticated for it (AUTH, no proof: the worker trusts its broker). */
  private tellWorker(worker: Worker, req: QueuedRequest): void {
    const key = this.clientKeys.get(req.clientKey)
    if (key === undefined || !worker.extended || worker.told.has(req.clientKey)) return
    worker.told.add(req.clientKey)
    this.socket.pushWithHead(req.toWorker, encodeAuth(key, NO_PROOF), worker.id, true)
  }

  /**
   * A CANCEL or CREDIT for a call of this client: on to the worker that holds it, or, for a CANCEL
   * of a call still queued, the call leaves the queue (its caller has already ended it: no answer).
   * Anything else is dropped and counted: the call has ended, or never was.
   */
  private followUp(route: Route, id: number, cancel: boolean, envelope: Buffer): void {
    const { clientKey, service } = route
    const worker = this.workers.holder(service, clientKey, id)
    if (worker !== undefined) {
      // A plain MDP worker would take the envelope for a new request.
      if (!worker.extended) return this.counters.drop('follow-up-to-plain-worker')
      this.counters.followUps++
      this.socket.pushWithHead(route.toWorker, envelope, worker.id, true)
      return
    }
    if (cancel && this.queues.cancel(service, clientKey, id)) {
      this.counters.cancelledInQueue++
      return this.touch(service)
    }
    this.counters.drop('unknown-call')
  }

  /** Queues a request, or refuses it: to its client, or through `refused` (a deferred call's submit). */
  private enqueue(req: QueuedRequest, refused?: (code: StatusCode, message: string, details: unknown) => void): void {
    const { clientId, service, request } = req
    const refuse = (reason: string, code: StatusCode, message: string): void => {
      if (refused === undefined) return this.refuse(clientId, service, request.id, reason, code, message, NOT_STARTED)
      this.counters.reject(reason)
      refused(code, message, NOT_STARTED)
    }
    if (this.workers.live(service) === 0 && this.requestExpiryMs === 0) return refuse('no-service', 'UNAVAILABLE', `no worker for ${service}`)
    const refusal = this.queues.add(req, this.workers.count(service) > 0, this.counters.workerless.size)
    switch (refusal) {
      case undefined:
        this.counters.service(service).requests++
        return this.touch(service)
      case 'unknown-services':
        return refuse(refusal, 'UNAVAILABLE', `no worker for ${service}, and the broker already holds requests for ${this.counters.workerless.size} services without one`)
      case 'queue-full':
        return refuse(refusal, 'RESOURCE_EXHAUSTED', `broker queue for ${service} is full (${this.queues.depth(service)} requests); retry later or add workers`)
      case 'queue-bytes':
      case 'total-bytes':
        return refuse(refusal, 'RESOURCE_EXHAUSTED', `broker queue for ${service} is full (${refusal === 'queue-bytes' ? `${this.queues.bytesFor(service)} bytes for ${service}` : `${this.queues.bytes} bytes in total`}); retry later or add workers`)
    }
  }

  private onMmi(clientId: Buffer, service: string, body: Buffer[]): void {
    let code = '501'
    if (service === `${MMI_PREFIX}service`) {
      const name = body.at(-1)?.toString() ?? ''
      code = name === ADMIN || name === QUEUE || this.workers.live(name) > 0 ? '200' : '404'
    } else if (service === MMI_ZRPC) {
      code = '200'
      if (this.joiners.size >= MAX_JOINERS) this.joiners.clear()
      this.joiners.add(clientId.toString('latin1'))
    }
    // As the reference: the last body frame is replaced by the code. A durable broker says so after it.
    if (service === MMI_ZRPC && this.options.durable !== undefined) return void this.socket.pushWithHead(clientHead(service, [...body.slice(0, -1), Buffer.from(code)]), DURABLE, clientId)
    this.socket.pushWithHead(clientHead(service, body.slice(0, -1)), Buffer.from(code), clientId)
  }

  private onWorker(sender: Buffer, frames: Buffer[]): void {
    const msg = parseWorkerMessage(frames)
    const worker = this.workers.get(sender.toString('hex'))
    if (worker !== undefined && msg.kind !== 'invalid') this.workers.heard(worker)
    switch (msg.kind) {
      case 'invalid':
        return this.counters.drop(msg.reason)
      case 'request':
        return this.counters.drop('bad-command')
      case 'disconnect':
        if (worker === undefined) return
        // A worker that stops taking work keeps the requests it holds and answers them; it leaves after.
        if (worker.holding > 0) {
          this.workers.drain(worker)
          worker.saidDisconnect = true
          return
        }
        return this.removeWorker(worker, 'disconnected', false)
      case 'ready':
        if (worker !== undefined) return this.removeWorker(worker, 'protocol-error', true)
        if (msg.service.startsWith(MMI_PREFIX) || msg.service === ADMIN || msg.service === QUEUE) return this.unexpected(sender, 'forbidden-ready')
        return this.addWorker(sender, msg.service, msg.extra)
      case 'heartbeat':
        if (worker === undefined) return this.unexpected(sender, 'unexpected-command')
        if (worker.holding > 0) worker.beatsWhileBusy = true
        return
      case 'reply':
        if (worker === undefined) return this.unexpected(sender, 'unexpected-command')
        return this.onReply(worker, msg.client, msg.body)
    }
  }

  /** A valid command from a peer that may not send it: DISCONNECT, so it starts over with READY. */
  private unexpected(sender: Buffer, reason: 'unexpected-command' | 'forbidden-ready' | 'bad-ready'): void {
    this.counters.drop(reason)
    this.socket.pushWithHead(...commandFrames(Command.Disconnect), sender)
  }

  private onReply(worker: Worker, clientId: Buffer, body: Buffer[]): void {
    if (worker.extended) this.onCreditReply(worker, clientId, body)
    else {
      // MDP: one reply per request, so this reply ends the one request the worker holds, whatever it says.
      const only = this.workers.only(worker)
      if (only === undefined || !only.req.clientId.equals(clientId)) return this.counters.drop('unknown-client')
      const held = this.workers.release(worker, only.clientKey, only.req.id)!
      this.counters.service(held.service).replies++
      // A plain request's reply goes back unopened, every frame of it, as the reference broker does.
      if (held.opaque === true) this.socket.pushWithHead([...this.clientHead(held.service), ...body.slice(0, -1)], body.at(-1) ?? EMPTY_FRAME, clientId)
      else if (isAnswerTo(held.id, body, this.limits)) {
        if (answerOf(body[0]!)?.error === true) this.counters.error(held.service, errorCode(body[0]!))
        this.toClient(clientId, held.service, body[0]!)
      }
      else this.refuse(clientId, held.service, held.id, 'bad-reply', 'INTERNAL', `the worker for ${held.service} sent a reply that is not one answer to this call`)
    }
    if (worker.draining && worker.holding === 0) return this.removeWorker(worker, worker.saidDisconnect ? 'disconnected' : 'kicked', !worker.saidDisconnect)
    this.dispatch(worker.service)
  }

  /**
   * A credit worker's REPLY: one or more answers for one client. Each must answer a request this
   * worker holds for that client; the others are dropped and counted (`unknown-call`), never
   * delivered. The frame goes on as it came when every answer is good, which is the usual case.
   */
  private onCreditReply(worker: Worker, clientId: Buffer, body: Buffer[]): void {
    const [frame] = body
    const scan = body.length === 1 && frame !== undefined ? scanFrame(frame, this.limits) : undefined
    if (scan === undefined || scan.kind === 'malformed') return this.counters.drop('unreadable-reply')
    const clientKey = clientId.toString('latin1')
    const good: Buffer[] = []
    let ended = 0
    for (let i = 0; i < scan.ends.length; i++) {
      const start = i === 0 ? 0 : scan.ends[i - 1]!
      const envelope = frame!.subarray(start, scan.ends[i])
      const answer = answerOf(envelope)
      // A stream's ITEM goes on while the worker holds its call; a REPLY or ERROR ends the call.
      const belongs = answer !== undefined && (answer.ends ? this.workers.release(worker, clientKey, answer.id) !== undefined : this.workers.holds(worker, clientKey, answer.id))
      if (!belongs) {
        this.counters.drop('unknown-call')
        continue
      }
      good.push(envelope)
      if (answer.ends) ended++
      if (answer.error) this.counters.error(worker.service, errorCode(envelope))
    }
    if (good.length === 0) return
    this.counters.service(worker.service).replies += ended
    if (clientKey === TICKETS_KEY) {
      for (const envelope of good) this.ticketAnswer(envelope)
      return
    }
    if (this.durable !== undefined && this.durable.size > 0) return this.durableReply(worker, clientId, good)
    const joins = this.joiners.has(clientKey)
    if (joins && good.length === scan.ends.length) this.socket.pushWithHead(worker.replyHead, frame!, clientId, true)
    else for (const envelope of good) this.socket.pushWithHead(worker.replyHead, envelope, clientId, joins)
  }

  /** A credit worker's answers for a client of a durable broker: each answer of a call on record goes through its record. */
  private durableReply(worker: Worker, clientId: Buffer, envelopes: readonly Buffer[]): void {
    const joins = this.joiners.has(clientId.toString('latin1'))
    for (const envelope of envelopes) {
      const answer = answerOf(envelope)
      const entry = answer?.ends === true ? this.durable!.find(clientId, answer.id) : undefined
      if (entry !== undefined) this.settle(entry, envelope)
      else this.socket.pushWithHead(worker.replyHead, envelope, clientId, joins)
    }
  }

  /** A client of a durable broker is back: the answers that waited for it go now. */
  private clientBack(key: string): void {
    if (!this.gone.delete(key) || this.durable === undefined) return
    for (const entry of [...this.durable.entries()]) if (entry.call.st === 2 && entry.call.c !== null && keyFor(entry.call.c) === key) this.deliverStored(entry)
  }

  private onPeer(id: Buffer, event: 'connected' | 'disconnected'): void {
    if (event === 'connected') return this.clientBack(id.toString('latin1'))
    if (this.durable !== undefined) this.gone.add(id.toString('latin1'))
    this.joiners.delete(id.toString('latin1'))
    if (this.clientKeys.delete(id.toString('latin1'))) for (const worker of this.workers.all()) worker.told.delete(id.toString('latin1'))
    const worker = this.workers.get(id.toString('hex'))
    // Its connection is gone: whatever it held cannot be answered, so say so now rather than after the liveness window.
    if (worker !== undefined) this.removeWorker(worker, 'disconnected', false)
  }

  private addWorker(id: Buffer, service: string, extra: readonly Buffer[]): void {
    const credit = readCredit(extra)
    if (typeof credit === 'object') return this.unexpected(id, 'bad-ready')
    const worker = this.workers.add(id, service, this.clientHead(service), credit)
    this.touch(service)
    this.emit({ kind: 'joined', service, identity: worker.identity })
    this.dispatch(service)
  }

  private removeWorker(worker: Worker, reason: WorkerLeftReason, sendDisconnect: boolean): void {
    if (sendDisconnect) this.socket.pushWithHead(...commandFrames(Command.Disconnect), worker.id)
    const held = this.workers.remove(worker)
    this.touch(worker.service)
    this.emit({ kind: 'left', service: worker.service, identity: worker.identity, reason })
    // The broker cannot know whether running the call again is safe; the client does (idempotent).
    for (const req of held) {
      if (req.opaque === true) {
        this.counters.reject('opaque-worker-lost')
        continue
      }
      this.refuse(req.clientId, req.service, req.id, 'worker-lost', 'UNAVAILABLE', `the worker serving ${req.service} was lost; the call may or may not have run`, { workerLost: true })
    }
  }

  /**
   * Hands queued requests to workers with credit, in turn. Requests from one client message bound
   * for one credit worker share a head, so the send queue joins them into one frame.
   */
  private dispatch(service: string): void {
    let worker: Worker | undefined
    while ((worker = this.workers.next(service)) !== undefined) {
      // A plain request goes only to a plain worker (a zrpc worker would take its body for envelopes);
      // with none free, the zrpc requests behind it go first rather than wait behind it.
      const plain = this.workers.nextPlain(service)
      const req = this.queues.takeFirst(service, plain === undefined ? isZrpcRequest : anyRequest)
      if (req === undefined) break
      if (req.opaque !== undefined) {
        this.socket.pushWithHead([...req.toWorker, ...req.opaque.slice(0, -1)], req.opaque.at(-1)!, plain!.id, false)
        this.workers.hold(plain!, req.clientKey, { clientId: req.clientId, service, id: req.request.id, opaque: true })
        continue
      }

      const left = Math.min(req.request.timeoutMs, Math.ceil(req.receivedAt + req.request.timeoutMs - Date.now()))
      if (left <= 0) {
        this.late(req)
        continue
      }
      const { id, method, metadata, params, window, key } = req.request
      if (this.workers.holds(worker, req.clientKey, id)) {
        // The id of a call this worker holds for the same client: the worker would drop it (an answer
        // would end the first call), and its place in the worker's credit would never come back.
        this.counters.drop('duplicate-id')
        continue
      }
      if (this.clientKeys.size > 0) this.tellWorker(worker, req)
      const frame = left < req.request.timeoutMs ? encodeRequest(id, service, method, left, metadata, params, window, key) : req.frame
      const stored = this.durable?.find(req.clientId === TICKETS_CLIENT ? null : req.clientId, id)
      if (stored !== undefined && !stored.call.k) {
        // It must not run twice: on record as sent before it goes, so a restart never sends it again.
        this.workers.hold(worker, req.clientKey, { clientId: req.clientId, service, id })
        const to = worker
        this.durable!.sent(stored).then(
          () => void this.socket.pushWithHead(req.toWorker, frame, to.id, to.extended),
          (err: unknown) => {
            // Never sent: the worker's credit comes back and the caller hears why at once.
            if (this.workers.release(to, req.clientKey, id) === undefined) return
            this.toClient(req.clientId, service, encodeError(id, 'UNAVAILABLE', `the broker could not write the call to disk: ${(err as Error).message}`, NOT_STARTED))
            this.dispatch(service)
          },
        )
        this.markTicketRunning(req)
        continue
      }
      if (!this.socket.pushWithHead(req.toWorker, frame, worker.id, worker.extended)) {
        this.refuse(req.clientId, service, id, 'send-failed', 'UNAVAILABLE', `the broker could not send the request to a ${service} worker (send queue full)`, NOT_STARTED)
        break
      }
      this.workers.hold(worker, req.clientKey, { clientId: req.clientId, service, id })
      this.markTicketRunning(req)
    }
    this.touch(service)
  }

  private markTicketRunning(req: QueuedRequest): void {
    if (req.clientId !== TICKETS_CLIENT) return
    const ticket = this.tickets.byCallId(req.request.id)
    if (ticket !== undefined) this.tickets.running(ticket)
  }

  /** Heartbeat tick: expire silent workers, beat the rest (busy ones too: zrpc workers answer each beat). */
  private beat(): void {
    for (const worker of this.workers.expired(Date.now())) this.removeWorker(worker, 'expired', false)
    for (const worker of this.workers.all()) this.socket.pushWithHead(...commandFrames(Command.Heartbeat), worker.id)
  }

  /** Drops queued requests whose deadline passed, and those no worker could take within requestExpiryMs. */
  private sweep(): void {
    const now = Date.now()
    for (const ticket of this.tickets.expired(now)) this.forgetTicket(ticket)
    if (this.durable !== undefined) {
      this.durable.sweep(now)
      // Remember only the gone clients that answers still wait for.
      if (this.gone.size > 1000) {
        const waitedFor = new Set<string>()
        for (const entry of this.durable.entries()) if (entry.call.c !== null) waitedFor.add(keyFor(entry.call.c))
        for (const key of this.gone) if (!waitedFor.has(key)) this.gone.delete(key)
      }
    }
    for (const service of [...this.queues.services()]) {
      for (const req of this.queues.removeWhere(service, (r) => r.receivedAt + r.request.timeoutMs <= now)) this.late(req)
      if (this.workers.live(service) === 0) {
        for (const req of this.queues.removeWhere(service, (r) => now - r.receivedAt >= this.requestExpiryMs)) {
          if (req.opaque !== undefined) {
            this.counters.reject('opaque-expired')
            continue
          }
          this.refuse(req.clientId, service, req.request.id, 'expired', 'UNAVAILABLE', `no worker for ${service} took the call within ${this.requestExpiryMs} ms`, NOT_STARTED)
        }
      } else if (this.workers.livePlain(service) === 0) {
        // Plain requests go only to plain workers: with zrpc workers alone they would wait for ever and fill the queue.
        for (const _ of this.queues.removeWhere(service, (r) => r.opaque !== undefined && now - r.receivedAt >= this.requestExpiryMs)) this.counters.reject('opaque-expired')
      }
      this.touch(service)
    }
  }

  private late(req: QueuedRequest): void {
    this.counters.expired++
    this.counters.service(req.service).expired++
    this.answer(req.clientId, req.service, req.request.id, 'DEADLINE_EXCEEDED', 'deadline passed while queued in the broker')
  }

  /** Answers a request the broker itself refuses, counted by reason. */
  private refuse(clientId: Buffer, service: string, id: number, reason: string, code: StatusCode, message: string, details?: unknown): void {
    this.counters.reject(reason)
    // Only for names the broker tracks (workers or a queue): refusals of invented names leave no entry behind.
    if (this.workers.count(service) > 0 || this.queues.depth(service) > 0) this.counters.error(service, code)
    this.answer(clientId, service, id, code, message, details)
  }

  private answer(clientId: Buffer, service: string, id: number, code: StatusCode, message: string, details?: unknown): void {
    this.toClient(clientId, service, encodeError(id, code, message, details))
  }

  /** One answer to a client: joined with others in its turn only for a client that asked mmi.zrpc. */
  private toClient(clientId: Buffer, service: string, frame: Body): void {
    if (clientId === TICKETS_CLIENT) return this.ticketAnswer(bytesOf(frame))
    if (this.durable !== undefined && this.durable.size > 0) {
      const bytes = bytesOf(frame)
      const id = peekHeader(bytes)?.id
      const entry = id === undefined ? undefined : this.durable.find(clientId, id)
      if (entry !== undefined && entry.call.st !== 2) return this.settle(entry, bytes)
    }
    this.socket.pushWithHead(this.clientHead(service), frame, clientId, this.joiners.has(clientId.toString('latin1')))
  }

  private clientHead(service: string): readonly Buffer[] {
    return cached(this.clientHeads, service, () => clientHead(service))
  }

  /** Keeps per-service counters and the set of names waiting without a worker in step with the queues and workers. */
  private touch(service: string): void {
    this.counters.track(service, this.queues.depth(service), this.workers.count(service))
  }

  private emit(event: BrokerWorkerEvent): void {
    for (const listener of this.listeners) listener(event)
  }

  private overview(): unknown {
    const { services, dropped, rejected, expired, workerList, queuedBytes, durable, tickets } = this.stats()
    return {
      services: Object.entries(services).map(([name, s]) => ({ name, ...s })),
      workers: [...workerList],
      dropped,
      rejected,
      expired,
      queuedBytes,
      tickets,
      ...(durable !== undefined && { durable: { calls: durable.calls, fileBytes: durable.fileBytes } }),
    }
  }
}

const EMPTY = new Uint8Array(0)
const NO_PROOF = new Uint8Array(32)
const isZrpcRequest = (req: QueuedRequest): boolean => req.opaque === undefined
const anyRequest = (): boolean => true
const DURABLE = Buffer.from('durable')

/** The answer to a call that was at a worker when the broker stopped, and must not run twice. */
function lostAtRestart(id: number): Buffer {
  return encodeError(id, 'UNAVAILABLE', 'the broker stopped while this call was at a worker; it may or may not have run', { workerLost: true, mayHaveRun: true })
}

/** A routing id as the broker's maps key it. */
function keyFor(client: Uint8Array): string {
  return Buffer.from(client.buffer, client.byteOffset, client.byteLength).toString('latin1')
}

/** What status and collect say of a ticket (unknown: never issued, collected, or past its retention). */
function view(ticket: Ticket | undefined): TicketView {
  if (ticket === undefined) return { state: 'unknown' }
  const { outcome } = ticket
  if (outcome === undefined) return { state: ticket.state }
  if (outcome.ok) return { state: ticket.state, result: outcome.result }
  return { state: ticket.state, error: { code: outcome.code, message: outcome.message, details: outcome.details } }
}

/** The status code of an ERROR envelope from a worker (UNKNOWN when it is not a known one): read only for errors, which are rare. */
function errorCode(envelope: Buffer): StatusCode {
  const env = readEnvelopeWithCbor(envelope)
  return env.kind === Kind.Error ? env.code : 'UNKNOWN'
}
const EMPTY_FRAME = Buffer.alloc(0)

/** The head cached under `key`, made on first use; a full cache starts over, so it stays bounded. */
function cached(heads: Map<string, readonly Buffer[]>, key: string, make: () => readonly Buffer[]): readonly Buffer[] {
  let head = heads.get(key)
  if (head === undefined) {
    if (heads.size >= MAX_CACHED_HEADS) heads.clear()
    head = make()
    heads.set(key, head)
  }
  return head
}
