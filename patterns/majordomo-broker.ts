/**
 * Majordomo broker (RFC 7 MDP/0.1 + RFC 8 MMI): one ROUTER for clients and workers, told apart by
 * the header frame; per-service LRU queues of idle workers; heartbeats; worker expiry.
 *
 * ```
 *  client ──[id][] MDPC01 svc body..──►  ┌────────────┐ ──[w][] MDPW01 0x02 id [] body..──► worker
 *  client ◄─[id][] MDPC01 svc body..───  │   ROUTER   │ ◄─[w][] MDPW01 0x03 id [] body..─── worker
 *                                        │ svc: queue │ ◄─[w][] MDPW01 0x01 svc  (READY)
 *                                        │ svc: idle  │ ◄─►[w][] MDPW01 0x04     (HEARTBEAT)
 *                                        └────────────┘ ◄─►[w][] MDPW01 0x05     (DISCONNECT)
 * ```
 * Unlike the guide's reference broker, busy workers expire too (their request goes to
 * `onWorkerLost`, default: requeue at the front), `mmi.service` says 404 once the last worker has
 * gone, and queued requests can be bounded and expired. A busy worker expires only once it has shown
 * that it heartbeats while busy (zrpc's workers beat as each request arrives): the reference worker
 * is silent while its handler runs, and expiring it then would cut every long request short.
 */
import { EventEmitter } from 'node:events'
import { Router } from 'zeromq'
import {
  Command, HEARTBEAT_LIVENESS, HEARTBEAT_MS, MDPC01, MMI_PREFIX, SendQueue,
  addressedFrames, clientFrames, isHeader, parseClientMessage, parseWorkerMessage, toFrames, workerFrames,
} from './majordomo-protocol.js'
import type { Frames, InvalidReason, LogFn } from './majordomo-protocol.js'

/** A client request the broker holds: who asked, for what, and when it arrived. */
export interface QueuedRequest {
  clientId: Buffer
  service: string
  body: Buffer[]
  /** `Date.now()` when the broker received it. */
  receivedAt: number
}

/** Why a request was dropped without a reply from a worker. */
export type RejectReason = 'queue-full' | 'expired' | 'no-service' | 'not-admitted' | 'worker-lost'
/** Why a message was dropped (invalid frames, or valid frames that make no sense here). */
export type DropReason = InvalidReason | 'unexpected-command' | 'unknown-client'
/** Why a worker left. `kicked` is `disconnectWorker()`; `protocol-error` a second READY or an `mmi.*` READY. */
export type WorkerLeftReason = 'expired' | 'disconnected' | 'kicked' | 'protocol-error'
/** A worker as events and `stats()` describe it. */
export interface WorkerInfo {
  id: Buffer
  /** Routing id in hex, for logs and `disconnectWorker()`. */
  identity: string
  service: string
}

/** Broker events, one line each for a CLI. */
export interface BrokerEvents {
  'worker-joined': [WorkerInfo]
  'worker-left': [WorkerInfo, WorkerLeftReason]
}

export interface BrokerOptions {
  /** Heartbeat interval, ms (default 2500, the reference's). Workers must use the same. */
  heartbeatMs?: number
  /** Missed heartbeats before a worker is dead (default 3). */
  liveness?: number
  /** Queued requests per service before new ones are rejected with `queue-full` (default unbounded). */
  maxQueuePerService?: number
  /** How long a request may wait for a service that has no worker. Unset: for ever (reference); 0: reject at once (`no-service`). */
  requestExpiryMs?: number
  /** ZMQ_MAXMSGSIZE for the ROUTER: peers sending bigger messages are disconnected by libzmq. */
  maxMessageSize?: number
  /** Called right before a queued request goes to a worker; `false` drops it (`not-admitted`). */
  admit?: (req: QueuedRequest) => boolean
  /** Called for every queued request on each heartbeat tick; `true` drops it (`not-admitted`), freeing its queue slot. */
  isStale?: (req: QueuedRequest) => boolean
  /** Called for every request dropped without a worker's reply; answer the client from here with `sendToClient()`. */
  onReject?: (req: QueuedRequest, reason: RejectReason) => void
  /** Decides what happens to the request in flight at a worker that died (default `requeue`, at the front). `drop` also calls `onReject(req, 'worker-lost')`. */
  onWorkerLost?: (req: QueuedRequest, service: string) => 'requeue' | 'drop'
  /** Log lines (`I:`/`W:`/`E:`); off by default. */
  log?: LogFn
}

/** Per-service numbers from `stats()`. */
export interface ServiceStats {
  workers: number
  idle: number
  queued: number
  requests: number
  replies: number
}

interface Worker extends WorkerInfo {
  expiresAt: number
  busy: QueuedRequest | undefined
  draining: boolean
  /** Seen heartbeating while busy: its silence while busy means death, not work. */
  beatsWhileBusy: boolean
}

interface Service {
  name: string
  requests: QueuedRequest[]
  idle: Worker[]
  workers: Set<Worker>
  counters: { requests: number; replies: number }
}

const DROP_REASONS: readonly DropReason[] = ['bad-envelope', 'bad-header', 'bad-command', 'bad-frames', 'unexpected-command', 'unknown-client']
const REJECT_REASONS: readonly RejectReason[] = ['queue-full', 'expired', 'no-service', 'not-admitted', 'worker-lost']

/**
 * The Majordomo broker.
 *
 * Why: service-named request routing with pull-based load balancing and failure detection, over a
 * single socket, speaking the guide's wire protocol so any MDP/0.1 client or worker can join.
 *
 * @example
 * const broker = new MajordomoBroker({ heartbeatMs: 1000 })
 * broker.on('worker-left', (w, why) => console.log(`I: ${w.service} worker ${w.identity} left: ${why}`))
 * const endpoint = await broker.bind('tcp://127.0.0.1:*')
 * // ...
 * await broker.close()
 */
export class MajordomoBroker extends EventEmitter<BrokerEvents> {
  private readonly socket: Router
  private readonly out: SendQueue
  private readonly services = new Map<string, Service>()
  private readonly workers = new Map<string, Worker>()
  private readonly dropped = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>
  private readonly rejected = Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Record<RejectReason, number>
  private readonly heartbeatMs: number
  private readonly liveness: number
  private timer: NodeJS.Timeout | undefined
  private loop: Promise<void> | undefined

  constructor(private readonly opts: BrokerOptions = {}) {
    super()
    this.heartbeatMs = opts.heartbeatMs ?? HEARTBEAT_MS
    this.liveness = opts.liveness ?? HEARTBEAT_LIVENESS
    this.socket = new Router({ linger: 0, mandatory: false, ...(opts.maxMessageSize === undefined ? {} : { maxMessageSize: opts.maxMessageSize }) })
    this.out = new SendQueue(this.socket)
  }

  /** Binds (call again for more endpoints), starts serving, and returns the resolved endpoint. */
  async bind(endpoint: string): Promise<string> {
    await this.socket.bind(endpoint)
    const resolved = this.socket.lastEndpoint ?? endpoint
    this.opts.log?.(`I: MDP broker is active at ${resolved}`)
    this.loop ??= this.run()
    this.timer ??= setInterval(() => this.tick(), this.heartbeatMs)
    return resolved
  }

  /** Stops serving and closes the socket. Workers notice by heartbeat and reconnect to a new broker. */
  async close(): Promise<void> {
    clearInterval(this.timer)
    this.socket.close()
    await this.loop
  }

  /** Sends a REPLY to a client as if from `service`: for answers the layer above makes itself. */
  sendToClient(clientId: Buffer, service: string, body: Frames): void {
    void this.out.push([clientId, ...clientFrames(service, toFrames(body))])
  }

  /** Stops routing to a worker; sends it DISCONNECT now if idle, else after its reply. False if unknown. */
  disconnectWorker(identity: string): boolean {
    const worker = this.workers.get(identity)
    if (!worker) return false
    worker.draining = true
    if (!worker.busy) this.deleteWorker(worker, 'kicked', true)
    return true
  }

  /** Counters and queue depths, per service and global. */
  stats(): { services: Record<string, ServiceStats>; workers: number; dropped: Record<DropReason, number>; rejected: Record<RejectReason, number> } {
    const services: Record<string, ServiceStats> = {}
    for (const s of this.services.values()) {
      services[s.name] = { workers: s.workers.size, idle: s.idle.length, queued: s.requests.length, ...s.counters }
    }
    return { services, workers: this.workers.size, dropped: { ...this.dropped }, rejected: { ...this.rejected } }
  }

  private async run(): Promise<void> {
    try {
      for await (const [sender, ...frames] of this.socket) {
        if (!sender) continue
        try {
          if (isHeader(frames[1], MDPC01)) this.onClient(sender, frames)
          else this.onWorker(sender, frames)
        } catch (err) {
          // A throwing hook or listener must not stop the broker.
          this.opts.log?.(`E: ${String(err)}`)
        }
      }
    } catch (err) {
      if (!this.socket.closed) this.opts.log?.(`E: receive loop: ${String(err)}`)
    }
  }

  private drop(reason: DropReason, detail: string): void {
    this.dropped[reason]++
    this.opts.log?.(`W: dropped message (${reason}): ${detail}`)
  }

  private reject(req: QueuedRequest, reason: RejectReason): void {
    this.rejected[reason]++
    this.opts.log?.(`W: rejected request for ${req.service} (${reason})`)
    this.opts.onReject?.(req, reason)
  }

  private onClient(clientId: Buffer, frames: Buffer[]): void {
    const msg = parseClientMessage(frames)
    if ('invalid' in msg) return this.drop(msg.invalid, 'client request')
    const req: QueuedRequest = { clientId, service: msg.service, body: msg.body, receivedAt: Date.now() }
    if (msg.service.startsWith(MMI_PREFIX)) return this.onMmi(req)
    const service = this.service(msg.service)
    service.counters.requests++
    if (this.liveWorkers(service) === 0 && this.opts.requestExpiryMs === 0) this.reject(req, 'no-service')
    else if (service.requests.length >= (this.opts.maxQueuePerService ?? Infinity)) this.reject(req, 'queue-full')
    else service.requests.push(req)
    this.dispatch(service)
  }

  private onMmi(req: QueuedRequest): void {
    let code = '501'
    if (req.service === `${MMI_PREFIX}service`) {
      const service = this.services.get(req.body.at(-1)?.toString() ?? '')
      code = service && this.liveWorkers(service) > 0 ? '200' : '404'
    }
    // As the reference: the last body frame is replaced by the code.
    const body = req.body.length > 0 ? [...req.body.slice(0, -1), Buffer.from(code)] : [Buffer.from(code)]
    this.sendToClient(req.clientId, req.service, body)
  }

  private onWorker(sender: Buffer, frames: Buffer[]): void {
    const msg = parseWorkerMessage(frames)
    const identity = sender.toString('hex')
    const worker = this.workers.get(identity)
    if (worker && msg.kind !== 'invalid') worker.expiresAt = Date.now() + this.heartbeatMs * this.liveness
    switch (msg.kind) {
      case 'invalid':
        return this.drop(msg.reason, `from ${identity}`)
      case 'request':
        return this.drop('bad-command', `REQUEST from worker ${identity}`)
      case 'disconnect':
        if (worker) this.deleteWorker(worker, 'disconnected', false)
        return
      case 'ready':
        if (worker) return this.deleteWorker(worker, 'protocol-error', true)
        if (msg.service.startsWith(MMI_PREFIX)) return this.unexpected(sender, `READY for ${msg.service}`)
        return this.addWorker(sender, identity, msg.service)
      case 'heartbeat':
        if (!worker) return this.unexpected(sender, 'HEARTBEAT before READY')
        if (worker.busy) worker.beatsWhileBusy = true
        return
      case 'reply':
        if (!worker) return this.unexpected(sender, 'REPLY before READY')
        return this.onReply(worker, msg.client, msg.body)
    }
  }

  /** A valid command out of order: DISCONNECT, so the peer starts over with READY. */
  private unexpected(sender: Buffer, detail: string): void {
    this.drop('unexpected-command', detail)
    void this.out.push([sender, ...workerFrames(Command.Disconnect)])
  }

  private onReply(worker: Worker, clientId: Buffer, body: Buffer[]): void {
    const req = worker.busy
    if (!req || !req.clientId.equals(clientId)) return this.drop('unknown-client', `REPLY from ${worker.identity}`)
    worker.busy = undefined
    const service = this.service(worker.service)
    service.counters.replies++
    void this.out.push([clientId, ...clientFrames(worker.service, body)])
    if (worker.draining) return this.deleteWorker(worker, 'kicked', true)
    service.idle.push(worker)
    this.dispatch(service)
  }

  private addWorker(id: Buffer, identity: string, serviceName: string): void {
    const service = this.service(serviceName)
    const worker: Worker = { id, identity, service: serviceName, expiresAt: Date.now() + this.heartbeatMs * this.liveness, busy: undefined, draining: false, beatsWhileBusy: false }
    this.workers.set(identity, worker)
    service.workers.add(worker)
    service.idle.push(worker)
    this.opts.log?.(`I: worker ${identity} ready for ${serviceName}`)
    this.emit('worker-joined', { id, identity, service: serviceName })
    this.dispatch(service)
  }

  private deleteWorker(worker: Worker, reason: WorkerLeftReason, sendDisconnect: boolean): void {
    if (sendDisconnect) void this.out.push([worker.id, ...workerFrames(Command.Disconnect)])
    this.workers.delete(worker.identity)
    const service = this.service(worker.service)
    service.workers.delete(worker)
    const at = service.idle.indexOf(worker)
    if (at >= 0) service.idle.splice(at, 1)
    this.opts.log?.(`I: worker ${worker.identity} for ${worker.service} left (${reason})`)
    this.emit('worker-left', { id: worker.id, identity: worker.identity, service: worker.service }, reason)
    const lost = worker.busy
    worker.busy = undefined
    if (lost) {
      if ((this.opts.onWorkerLost?.(lost, worker.service) ?? 'requeue') === 'requeue') service.requests.unshift(lost)
      else this.reject(lost, 'worker-lost')
    }
    this.dispatch(service)
  }

  private dispatch(service: Service): void {
    while (service.idle.length > 0 && service.requests.length > 0) {
      const req = service.requests.shift()
      if (!req) break
      if (this.opts.admit && !this.opts.admit(req)) {
        this.reject(req, 'not-admitted')
        continue
      }
      const worker = service.idle.shift()
      if (!worker) break
      worker.busy = req
      void this.out.push([worker.id, ...addressedFrames(Command.Request, req.clientId, req.body)])
    }
    this.forgetIfEmpty(service)
  }

  private tick(): void {
    const now = Date.now()
    for (const worker of [...this.workers.values()]) {
      if (worker.expiresAt < now && (!worker.busy || worker.beatsWhileBusy)) this.deleteWorker(worker, 'expired', false)
      else void this.out.push([worker.id, ...workerFrames(Command.Heartbeat)])
    }
    const stale = this.opts.isStale
    if (stale) {
      for (const service of [...this.services.values()]) {
        const [old, fresh] = partition(service.requests, stale)
        if (old.length === 0) continue
        service.requests = fresh
        for (const req of old) this.reject(req, 'not-admitted')
        this.forgetIfEmpty(service)
      }
    }
    const expiry = this.opts.requestExpiryMs
    if (expiry === undefined) return
    for (const service of [...this.services.values()]) {
      if (this.liveWorkers(service) > 0) continue
      const [old, fresh] = partition(service.requests, (r) => now - r.receivedAt >= expiry)
      service.requests = fresh
      for (const req of old) this.reject(req, 'expired')
      this.forgetIfEmpty(service)
    }
  }

  private liveWorkers(service: Service): number {
    let n = 0
    for (const w of service.workers) if (!w.draining) n++
    return n
  }

  private service(name: string): Service {
    let service = this.services.get(name)
    if (!service) {
      service = { name, requests: [], idle: [], workers: new Set(), counters: { requests: 0, replies: 0 } }
      this.services.set(name, service)
    }
    return service
  }

  /** Services are made on demand by any client; forget them when nothing refers to them, so floods of names do not grow the map. */
  private forgetIfEmpty(service: Service): void {
    if (service.workers.size === 0 && service.requests.length === 0) this.services.delete(service.name)
  }
}

function partition<T>(list: T[], test: (item: T) => boolean): [T[], T[]] {
  const yes: T[] = []
  const no: T[] = []
  for (const item of list) (test(item) ? yes : no).push(item)
  return [yes, no]
}

