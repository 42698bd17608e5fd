/**
 * The broker's counters and its `stats()` snapshot: per-service requests and replies (kept only
 * while a service has workers or waiting requests, so invented names leave nothing behind), drops
 * and refusals by reason, and the names that wait with no worker (bounded by maxUnknownServices).
 */
import type { TransportCounters } from '../transport/socket.js'
import type { RequestQueues } from './queue.js'
import type { WorkerRegistry } from './workers.js'

/** Per-service numbers from {@link BrokerStats}. */
export interface ServiceStats {
  readonly workers: number
  /** Workers with credit left (a plain MDP worker has one credit: idle). */
  readonly idle: number
  /** Requests the workers hold now. */
  readonly inFlight: number
  readonly queued: number
  /** Bytes of the requests waiting. */
  readonly queuedBytes: number
  readonly requests: number
  readonly replies: number
  /** Age of the oldest request waiting, in ms (0 when none waits). */
  readonly oldestQueuedMs: number
  /** Requests of this service whose deadline passed while they waited in the broker. */
  readonly expired: number
  /** ERROR answers to this service's callers, by status code: from its workers and from the broker itself. */
  readonly errors: Record<string, number>
}

/** What `Broker.stats()` reports. */
export interface BrokerStats {
  readonly services: Record<string, ServiceStats>
  readonly workers: number
  /** Messages dropped without an answer (malformed, out of order, unreadable with no id), by reason. */
  readonly dropped: Record<string, number>
  /** Requests answered by the broker instead of a worker, by reason. */
  readonly rejected: Record<string, number>
  /** Requests dropped because their deadline passed while they were queued. */
  readonly expired: number
  /** CANCELs that took a request out of the queue before a worker got it. */
  readonly cancelledInQueue: number
  /** CANCELs and CREDITs passed on to the worker holding their call. */
  readonly followUps: number
  /** Bytes of requests waiting, all services. */
  readonly queuedBytes: number
  /** Service names waiting with no worker now (bounded by maxUnknownServices). */
  readonly unknownServices: number
  /** Every registered worker. */
  readonly workerList: ReadonlyArray<{ readonly identity: string; readonly service: string; readonly credit: number; readonly holding: number }>
  /** The broker socket's counters: bytes received, and messages dropped for peers that do not read or have gone. */
  readonly transport?: TransportCounters
}

const DROP_REASONS = [
  'bad-envelope',
  'bad-header',
  'bad-command',
  'bad-frames',
  'unexpected-command',
  'unknown-client',
  'unreadable',
  'forbidden-ready',
  'bad-ready',
  'unknown-call',
  'unreadable-reply',
  'follow-up-to-plain-worker',
  'bad-auth',
  'duplicate-id',
]
const REJECT_REASONS = ['queue-full', 'queue-bytes', 'total-bytes', 'unknown-services', 'no-service', 'expired', 'invalid', 'worker-lost', 'bad-reply', 'send-failed']

/** What the broker counts per service while the service has workers or waiting requests. */
interface PerService {
  requests: number
  replies: number
  expired: number
  errors: Record<string, number>
}

/** Counters the broker keeps; see {@link BrokerStats}. */
export class BrokerCounters {
  private readonly dropped: Record<string, number> = Object.fromEntries(DROP_REASONS.map((r) => [r, 0]))
  private readonly rejected: Record<string, number> = Object.fromEntries(REJECT_REASONS.map((r) => [r, 0]))
  private readonly perService = new Map<string, PerService>()
  /** Names with waiting requests and no worker. */
  readonly workerless = new Set<string>()
  expired = 0
  cancelledInQueue = 0
  followUps = 0

  drop(reason: string): void {
    this.dropped[reason] = (this.dropped[reason] ?? 0) + 1
  }

  reject(reason: string): void {
    this.rejected[reason] = (this.rejected[reason] ?? 0) + 1
  }

  service(name: string): PerService {
    let counters = this.perService.get(name)
    if (counters === undefined) {
      counters = { requests: 0, replies: 0, expired: 0, errors: {} }
      this.perService.set(name, counters)
    }
    return counters
  }

  /** An ERROR with `code` went to a caller of `service`. */
  error(service: string, code: string): void {
    const errors = this.service(service).errors
    errors[code] = (errors[code] ?? 0) + 1
  }

  /** Called after any change to a service's queue or workers. */
  track(name: string, queued: number, workers: number): void {
    if (workers === 0 && queued === 0) this.perService.delete(name)
    if (workers === 0 && queued > 0) this.workerless.add(name)
    else this.workerless.delete(name)
  }

  snapshot(queues: RequestQueues, workers: WorkerRegistry, now = Date.now()): BrokerStats {
    const services: Record<string, ServiceStats> = {}
    for (const name of new Set([...workers.services(), ...queues.services()])) {
      const { requests, replies, expired, errors } = this.perService.get(name) ?? { requests: 0, replies: 0, expired: 0, errors: {} }
      const oldest = queues.peek(name)?.receivedAt
      services[name] = {
        workers: workers.count(name),
        idle: workers.idleCount(name),
        inFlight: workers.inFlight(name),
        queued: queues.depth(name),
        queuedBytes: queues.bytesFor(name),
        requests,
        replies,
        oldestQueuedMs: oldest === undefined ? 0 : Math.max(0, now - oldest),
        expired,
        errors: { ...errors },
      }
    }
    const workerList = [...workers.all()].map(({ identity, service, credit, holding }) => ({ identity, service, credit, holding }))
    return {
      services,
      workers: workers.size,
      dropped: { ...this.dropped },
      rejected: { ...this.rejected },
      expired: this.expired,
      cancelledInQueue: this.cancelledInQueue,
      followUps: this.followUps,
      queuedBytes: queues.bytes,
      unknownServices: this.workerless.size,
      workerList,
    }
  }
}
