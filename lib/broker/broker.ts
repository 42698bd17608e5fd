/**
 * Broker: a Majordomo broker (7/MDP) that carries zrpc calls and answers for itself in zrpc terms
 * when it cannot route one.
 *
 * It reads only the REQUEST envelope's header (id, timeoutMs); the params are a byte string it never
 * opens. Before handing a request to a worker it rewrites timeoutMs to the budget left, so time spent
 * queued here counts against the call's deadline, and it drops requests whose budget is gone.
 *
 * @example
 * const broker = new Broker({ heartbeatMs: 2500, liveness: 3, maxQueuePerService: 1000 })
 * const [endpoint] = await broker.bind('tcp://127.0.0.1:*')
 */
import { MajordomoBroker, type QueuedRequest, type RejectReason, type ServiceStats, type WorkerLeftReason } from '../../patterns/majordomo-broker.js'
import { Kind, encodeError, encodeRequest, parseFrame, type RequestEnvelope } from '../codec/envelope.js'
import type { StatusCode } from '../errors.js'
import { DEFAULT_MAX_MESSAGE_SIZE } from '../rpc/limits.js'
import { RpcServer } from '../service/server.js'
import { BrokerAdmin } from './admin.js'

/** Requests a service may have waiting in the broker unless configured. */
export const DEFAULT_MAX_QUEUE_PER_SERVICE = 10_000

export interface BrokerOptions {
  /** Heartbeat interval in ms (default 2500). Workers (`connectBroker`) must use the same. */
  readonly heartbeatMs?: number
  /** Missed heartbeats before a worker counts as dead (default 3). */
  readonly liveness?: number
  /** Requests queued per service; past it callers get RESOURCE_EXHAUSTED (default 10 000, so memory stays bounded). */
  readonly maxQueuePerService?: number
  /**
   * How long a request may wait for a service that has no live worker before the caller gets
   * UNAVAILABLE (0: at once). Unset: it waits until its deadline.
   */
  readonly requestExpiryMs?: number
  /** Largest message accepted, in bytes (default 4 MiB); bigger senders are disconnected by libzmq. */
  readonly maxMessageSize?: number
}

/** What {@link Broker.stats} reports. */
export interface BrokerStats {
  readonly services: Record<string, ServiceStats>
  readonly workers: number
  /** Messages dropped as malformed or out of order, by reason. */
  readonly dropped: Record<string, number>
  /** Requests answered by the broker instead of a worker, by reason. */
  readonly rejected: Record<string, number>
  /** Requests dropped because their deadline passed while they were queued. */
  readonly expired: number
  /** Every registered worker (the broker's own `zrpc.broker` workers included). */
  readonly workerList: ReadonlyArray<{ readonly identity: string; readonly service: string }>
}

/** A worker joining or leaving, as {@link Broker.onWorkerEvent} reports it. */
export interface BrokerWorkerEvent {
  readonly kind: 'joined' | 'left'
  readonly service: string
  /** Routing id in hex. */
  readonly identity: string
  readonly reason?: WorkerLeftReason
}

/** Why the broker itself answered a request, when it was not one of the MDP reasons. */
interface Refusal {
  readonly code: StatusCode
  readonly message: string
}

export class Broker {
  private readonly mdp: MajordomoBroker
  private readonly refusals = new WeakMap<QueuedRequest, Refusal>()
  private expired = 0
  private closed: Promise<void> | undefined
  private readonly liveWorkers = new Map<string, string>()
  private admin: RpcServer | undefined
  private readonly heartbeat: { heartbeatMs: number; liveness: number }

  constructor(options: BrokerOptions = {}) {
    this.heartbeat = { heartbeatMs: options.heartbeatMs ?? 2500, liveness: options.liveness ?? 3 }
    this.mdp = new MajordomoBroker({
      ...this.heartbeat,
      maxMessageSize: options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE,
      maxQueuePerService: options.maxQueuePerService ?? DEFAULT_MAX_QUEUE_PER_SERVICE,
      ...(options.requestExpiryMs !== undefined && { requestExpiryMs: options.requestExpiryMs }),
      admit: (req) => this.admit(req),
      // Requests whose deadline passed while queued leave at the next tick, not when a worker frees up:
      // they would hold queue slots (and memory) for calls nobody waits for.
      isStale: (req) => this.isOutOfTime(req),
      onReject: (req, reason) => this.onReject(req, reason),
      // The broker cannot know whether running the call again is safe; the client does (idempotent).
      onWorkerLost: () => 'drop',
    })
    this.mdp.on('worker-joined', (w) => this.liveWorkers.set(w.identity, w.service))
    this.mdp.on('worker-left', (w) => this.liveWorkers.delete(w.identity))
  }

  /** Binds one or more endpoints and returns them resolved (ephemeral ports filled in). */
  async bind(endpoints: string | readonly string[]): Promise<string[]> {
    const resolved: string[] = []
    for (const endpoint of typeof endpoints === 'string' ? [endpoints] : endpoints) resolved.push(await this.mdp.bind(endpoint))
    if (this.admin === undefined) await this.serveAdmin()
    return resolved
  }

  /** Calls `listener` for every worker that joins or leaves; returns a function that stops it. */
  onWorkerEvent(listener: (event: BrokerWorkerEvent) => void): () => void {
    const joined = (w: { identity: string; service: string }): void => listener({ kind: 'joined', service: w.service, identity: w.identity })
    const left = (w: { identity: string; service: string }, reason: WorkerLeftReason): void =>
      listener({ kind: 'left', service: w.service, identity: w.identity, reason })
    this.mdp.on('worker-joined', joined)
    this.mdp.on('worker-left', left)
    return () => {
      this.mdp.off('worker-joined', joined)
      this.mdp.off('worker-left', left)
    }
  }

  /** Asks a worker to finish its request and disconnect. False if no such worker. */
  disconnectWorker(identity: string): boolean {
    return this.mdp.disconnectWorker(identity)
  }

  stats(): BrokerStats {
    const workerList = [...this.liveWorkers].map(([identity, service]) => ({ identity, service }))
    return { ...this.mdp.stats(), expired: this.expired, workerList }
  }

  /** Stops serving. Workers notice by heartbeat and re-register with whatever binds the endpoint next. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      await this.admin?.close({ timeoutMs: 100 })
      await this.mdp.close()
    })()
    return this.closed
  }

  /** Serves `zrpc.broker` through this broker, on a private inproc endpoint. */
  private async serveAdmin(): Promise<void> {
    const endpoint = await this.mdp.bind(`inproc://zrpc-broker-${process.pid}-${++brokers}`)
    this.admin = new RpcServer().implement(BrokerAdmin, {
      services: () => {
        const { services, dropped, rejected, expired, workerList } = this.stats()
        return { services: Object.entries(services).map(([name, s]) => ({ name, ...s })), workers: [...workerList], dropped, rejected, expired }
      },
      disconnectWorker: ({ identity }) => this.disconnectWorker(identity),
    })
    await this.admin.connectBroker(endpoint, this.heartbeat)
  }

  /** Right before a request goes to a worker: drop it if unreadable or out of time, else refresh its budget. */
  private admit(req: QueuedRequest): boolean {
    const request = readRequest(req)
    if (request === undefined) {
      this.refusals.set(req, { code: 'INVALID_ARGUMENT', message: 'message body is not one zrpc REQUEST envelope' })
      return false
    }
    const left = req.receivedAt + request.timeoutMs - Date.now()
    if (left <= 0) {
      this.expired++
      this.refusals.set(req, { code: 'DEADLINE_EXCEEDED', message: 'deadline passed while queued in the broker' })
      return false
    }
    if (left < request.timeoutMs) {
      req.body[0] = encodeRequest(request.id, request.service, request.method, Math.ceil(left), request.metadata, request.params)
    }
    return true
  }

  private isOutOfTime(req: QueuedRequest): boolean {
    const request = readRequest(req)
    if (request === undefined || req.receivedAt + request.timeoutMs > Date.now()) return false
    this.expired++
    this.refusals.set(req, { code: 'DEADLINE_EXCEEDED', message: 'deadline passed while queued in the broker' })
    return true
  }

  private onReject(req: QueuedRequest, reason: RejectReason): void {
    const id = readId(req)
    if (id === undefined) return
    const answer = (code: StatusCode, message: string, details?: unknown): void =>
      this.mdp.sendToClient(req.clientId, req.service, [encodeError(id, code, message, details)])
    switch (reason) {
      case 'queue-full':
        return answer('RESOURCE_EXHAUSTED', `broker queue for ${req.service} is full`)
      case 'no-service':
      case 'expired':
        return answer('UNAVAILABLE', `no worker for ${req.service}`)
      case 'worker-lost':
        return answer('UNAVAILABLE', `the worker serving ${req.service} was lost; the call may or may not have run`, { workerLost: true })
      case 'not-admitted': {
        const refusal = this.refusals.get(req)
        return answer(refusal?.code ?? 'INTERNAL', refusal?.message ?? 'request refused by the broker')
      }
    }
  }
}

let brokers = 0

function readRequest(req: QueuedRequest): RequestEnvelope | undefined {
  const [frame] = req.body
  if (req.body.length !== 1 || frame === undefined) return undefined
  const envelopes = parseFrame(frame)
  const [env] = envelopes
  if (envelopes.length !== 1 || env === undefined || env.kind !== Kind.Request || env.service !== req.service) return undefined
  return env
}

/** The id to answer with, if the body is readable far enough to have one. */
function readId(req: QueuedRequest): number | undefined {
  const [frame] = req.body
  if (req.body.length !== 1 || frame === undefined) return undefined
  const [env] = parseFrame(frame)
  return env?.id ?? undefined
}
