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
 * Each REQUEST is parsed once on arrival with the broker's size limit; unreadable ones are refused
 * there (INVALID_ARGUMENT if an id is readable, else dropped and counted). Queues are bounded in
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
import { encodeError, encodeRequest } from '../codec/envelope.js'
import type { StatusCode } from '../errors.js'
import type { Dispatcher } from '../rpc/dispatcher.js'
import { DEFAULT_MAX_MESSAGE_SIZE } from '../rpc/limits.js'
import { addressedHead, clientHead, commandFrames } from '../rpc/mdp-frames.js'
import { TransportSocket } from '../transport/socket.js'
import { BrokerAdmin } from './admin.js'
import { adminDispatcher } from './admin-service.js'
import { brokerLimits, isAnswerTo, readRequest } from './intake.js'
import { RequestQueues, type QueuedRequest } from './queue.js'
import { WorkerRegistry, type HeldRequest, type Worker, type WorkerLeftReason } from './workers.js'
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
// `broker` marks the broker's own refusals: asking the same broker again at once would be refused again.
const NOT_STARTED = { notStarted: true, broker: true } as const

export class Broker {
  private readonly socket: TransportSocket
  private readonly queues: RequestQueues
  private readonly workers: WorkerRegistry
  private readonly counters = new BrokerCounters()
  private readonly admin: Dispatcher
  private readonly listeners = new Set<(event: BrokerWorkerEvent) => void>()
  private readonly limits: CborLimits
  private readonly heartbeatMs: number
  private readonly requestExpiryMs: number
  private heartbeatTimer: NodeJS.Timeout | undefined
  private sweepTimer: NodeJS.Timeout | undefined
  private closed: Promise<void> | undefined

  constructor(options: BrokerOptions = {}) {
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
    this.admin = adminDispatcher({ overview: () => this.overview(), disconnectWorker: (identity) => this.disconnectWorker(identity) })
    this.socket = new TransportSocket(
      { type: 'router', maxMessageSize, coalesce: false, notifyPeers: true },
      {
        onMessage: (frames) => this.onMessage(frames),
        onPeer: (id, event) => this.onPeer(id, event),
      },
    )
  }

  /** Binds one or more endpoints and returns them resolved (ephemeral ports filled in). */
  async bind(endpoints: string | readonly string[]): Promise<string[]> {
    const resolved: string[] = []
    for (const endpoint of typeof endpoints === 'string' ? [endpoints] : endpoints) resolved.push(await this.socket.bind(endpoint))
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
    if (worker.busy === undefined) this.removeWorker(worker, 'kicked', true)
    return true
  }

  stats(): BrokerStats {
    const t = this.socket.counters
    return { ...this.counters.snapshot(this.queues, this.workers), transport: { ...t, send: { ...t.send } } }
  }

  /** Stops serving: queued callers get UNAVAILABLE `{ notStarted: true }`. Workers notice by heartbeat and re-register with whatever binds next. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      clearInterval(this.heartbeatTimer)
      clearInterval(this.sweepTimer)
      for (const service of [...this.queues.services()]) {
        for (const req of this.queues.removeWhere(service, () => true)) this.answer(req.clientId, service, req.request.id, 'UNAVAILABLE', 'the broker is shutting down', NOT_STARTED)
      }
      await this.admin.close(100)
      await this.socket.close(100)
    })()
    return this.closed
  }

  private onMessage([sender, ...frames]: Buffer[]): void {
    if (sender === undefined) return
    if (isHeader(frames[1], MDPC01)) this.onClient(sender, frames)
    else this.onWorker(sender, frames)
  }

  private onClient(clientId: Buffer, frames: Buffer[]): void {
    const msg = parseClientMessage(frames)
    if ('invalid' in msg) return this.counters.drop(msg.invalid)
    const { service, body } = msg
    if (service.startsWith(MMI_PREFIX)) return this.onMmi(clientId, service, body)
    const intake = readRequest(service, body, this.limits)
    if (!intake.ok) {
      if (intake.id === undefined) return this.counters.drop('unreadable')
      return this.refuse(clientId, service, intake.id, 'invalid', 'INVALID_ARGUMENT', `${intake.reason}; the broker carries one zrpc REQUEST envelope per message`)
    }
    const { request, frame } = intake
    if (service === ADMIN) return this.admin.handle(request, clientId.toString('hex'), (out) => this.toClient(clientId, ADMIN, out))
    if (request.timeoutMs === 0) return this.late({ clientId, service, request, frame, receivedAt: Date.now() })
    if (this.workers.live(service) === 0 && this.requestExpiryMs === 0) {
      return this.refuse(clientId, service, request.id, 'no-service', 'UNAVAILABLE', `no worker for ${service}`, NOT_STARTED)
    }
    const hasWorker = this.workers.count(service) > 0
    const refusal = this.queues.add({ clientId, service, request, frame, receivedAt: Date.now() }, hasWorker, this.counters.workerless.size)
    switch (refusal) {
      case undefined:
        this.counters.service(service).requests++
        this.touch(service)
        return this.dispatch(service)
      case 'unknown-services':
        return this.refuse(clientId, service, request.id, refusal, 'UNAVAILABLE', `no worker for ${service}, and the broker already holds requests for ${this.counters.workerless.size} services without one`, NOT_STARTED)
      case 'queue-full':
        return this.refuse(clientId, service, request.id, refusal, 'RESOURCE_EXHAUSTED', `broker queue for ${service} is full (${this.queues.depth(service)} requests); retry later or add workers`, NOT_STARTED)
      case 'queue-bytes':
      case 'total-bytes':
        return this.refuse(clientId, service, request.id, refusal, 'RESOURCE_EXHAUSTED', `broker queue for ${service} is full (${refusal === 'queue-bytes' ? `${this.queues.bytesFor(service)} bytes for ${service}` : `${this.queues.bytes} bytes in total`}); retry later or add workers`, NOT_STARTED)
    }
  }

  private onMmi(clientId: Buffer, service: string, body: Buffer[]): void {
    let code = '501'
    if (service === `${MMI_PREFIX}service`) {
      const name = body.at(-1)?.toString() ?? ''
      code = name === ADMIN || this.workers.live(name) > 0 ? '200' : '404'
    }
    // As the reference: the last body frame is replaced by the code.
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
        // A worker that stops taking work keeps the request it holds and answers it; it leaves after.
        if (worker.busy !== undefined) {
          this.workers.drain(worker)
          worker.saidDisconnect = true
          return
        }
        return this.removeWorker(worker, 'disconnected', false)
      case 'ready':
        if (worker !== undefined) return this.removeWorker(worker, 'protocol-error', true)
        if (msg.service.startsWith(MMI_PREFIX) || msg.service === ADMIN) return this.unexpected(sender, 'forbidden-ready')
        return this.addWorker(sender, msg.service)
      case 'heartbeat':
        if (worker === undefined) return this.unexpected(sender, 'unexpected-command')
        if (worker.busy !== undefined) worker.beatsWhileBusy = true
        return
      case 'reply':
        if (worker === undefined) return this.unexpected(sender, 'unexpected-command')
        return this.onReply(worker, msg.client, msg.body)
    }
  }

  /** A valid command from a peer that may not send it: DISCONNECT, so it starts over with READY. */
  private unexpected(sender: Buffer, reason: 'unexpected-command' | 'forbidden-ready'): void {
    this.counters.drop(reason)
    this.socket.pushWithHead(...commandFrames(Command.Disconnect), sender)
  }

  private onReply(worker: Worker, clientId: Buffer, body: Buffer[]): void {
    const held = worker.busy
    if (held === undefined || !held.clientId.equals(clientId)) return this.counters.drop('unknown-client')
    worker.busy = undefined
    this.counters.service(held.service).replies++
    if (isAnswerTo(held.id, body, this.limits)) this.toClient(clientId, held.service, body[0]!)
    else this.refuse(clientId, held.service, held.id, 'bad-reply', 'INTERNAL', `the worker for ${held.service} sent a reply that is not one answer to this call`)
    if (worker.draining) return this.removeWorker(worker, worker.saidDisconnect ? 'disconnected' : 'kicked', !worker.saidDisconnect)
    this.workers.release(worker)
    this.dispatch(held.service)
  }

  private onPeer(id: Buffer, event: 'connected' | 'disconnected'): void {
    if (event !== 'disconnected') return
    const worker = this.workers.get(id.toString('hex'))
    // Its connection is gone: whatever it held cannot be answered, so say so now rather than after the liveness window.
    if (worker !== undefined) this.removeWorker(worker, 'disconnected', false)
  }

  private addWorker(id: Buffer, service: string): void {
    const worker = this.workers.add(id, service)
    this.touch(service)
    this.emit({ kind: 'joined', service, identity: worker.identity })
    this.dispatch(service)
  }

  private removeWorker(worker: Worker, reason: WorkerLeftReason, sendDisconnect: boolean): void {
    if (sendDisconnect) this.socket.pushWithHead(...commandFrames(Command.Disconnect), worker.id)
    const held: HeldRequest | undefined = this.workers.remove(worker)
    this.touch(worker.service)
    this.emit({ kind: 'left', service: worker.service, identity: worker.identity, reason })
    // The broker cannot know whether running the call again is safe; the client does (idempotent).
    if (held !== undefined) {
      this.refuse(held.clientId, held.service, held.id, 'worker-lost', 'UNAVAILABLE', `the worker serving ${held.service} was lost; the call may or may not have run`, { workerLost: true })
    }
  }

  private dispatch(service: string): void {
    while (this.workers.hasIdle(service)) {
      const req = this.queues.take(service)
      if (req === undefined) break
      const left = Math.min(req.request.timeoutMs, Math.ceil(req.receivedAt + req.request.timeoutMs - Date.now()))
      if (left <= 0) {
        this.late(req)
        continue
      }
      const { id, method, metadata, params } = req.request
      const frame = left < req.request.timeoutMs ? encodeRequest(id, service, method, left, metadata, params) : req.frame
      const worker = this.workers.takeIdle(service)!
      if (!this.socket.pushWithHead(addressedHead(Command.Request, req.clientId), frame, worker.id)) {
        this.workers.release(worker)
        this.refuse(req.clientId, service, id, 'send-failed', 'UNAVAILABLE', `the broker could not send the request to a ${service} worker (send queue full)`, NOT_STARTED)
        break
      }
      worker.busy = { clientId: req.clientId, service, id }
    }
    this.touch(service)
  }

  /** Heartbeat tick: expire silent workers, beat the rest (busy ones too: zrpc workers answer each beat). */
  private beat(): void {
    for (const worker of this.workers.expired(Date.now())) this.removeWorker(worker, 'expired', false)
    for (const worker of this.workers.all()) this.socket.pushWithHead(...commandFrames(Command.Heartbeat), worker.id)
  }

  /** Drops queued requests whose deadline passed, and those no worker could take within requestExpiryMs. */
  private sweep(): void {
    const now = Date.now()
    for (const service of [...this.queues.services()]) {
      for (const req of this.queues.removeWhere(service, (r) => r.receivedAt + r.request.timeoutMs <= now)) this.late(req)
      if (this.workers.live(service) === 0) {
        for (const req of this.queues.removeWhere(service, (r) => now - r.receivedAt >= this.requestExpiryMs)) {
          this.refuse(req.clientId, service, req.request.id, 'expired', 'UNAVAILABLE', `no worker for ${service} took the call within ${this.requestExpiryMs} ms`, NOT_STARTED)
        }
      }
      this.touch(service)
    }
  }

  private late(req: QueuedRequest): void {
    this.counters.expired++
    this.answer(req.clientId, req.service, req.request.id, 'DEADLINE_EXCEEDED', 'deadline passed while queued in the broker')
  }

  /** Answers a request the broker itself refuses, counted by reason. */
  private refuse(clientId: Buffer, service: string, id: number, reason: string, code: StatusCode, message: string, details?: unknown): void {
    this.counters.reject(reason)
    this.answer(clientId, service, id, code, message, details)
  }

  private answer(clientId: Buffer, service: string, id: number, code: StatusCode, message: string, details?: unknown): void {
    this.toClient(clientId, service, encodeError(id, code, message, details))
  }

  private toClient(clientId: Buffer, service: string, frame: Buffer): void {
    this.socket.pushWithHead(clientHead(service), frame, clientId)
  }

  /** Keeps per-service counters and the set of names waiting without a worker in step with the queues and workers. */
  private touch(service: string): void {
    this.counters.track(service, this.queues.depth(service), this.workers.count(service))
  }

  private emit(event: BrokerWorkerEvent): void {
    for (const listener of this.listeners) listener(event)
  }

  private overview(): unknown {
    const { services, dropped, rejected, expired, workerList, queuedBytes } = this.stats()
    return { services: Object.entries(services).map(([name, s]) => ({ name, ...s })), workers: [...workerList], dropped, rejected, expired, queuedBytes }
  }
}
