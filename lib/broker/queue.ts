/**
 * The broker's waiting requests: one FIFO per service, bounded in requests and in bytes, per
 * service and in total, plus a bound on how many service names may wait without a worker.
 *
 * Each request is parsed once, on arrival; what waits here is the parsed header and the original
 * frame, so a dispatch never reads the body again.
 */
import type { RequestEnvelope } from '../codec/envelope.js'

/** A readable zrpc REQUEST the broker holds until a worker is free. */
export interface QueuedRequest {
  readonly clientId: Buffer
  /** The client's routing id in latin1: the key its calls are held under at a worker. */
  readonly clientKey: string
  /** The frames in front of this request on its way to a worker; one array per client message, so its requests join. */
  readonly toWorker: readonly Buffer[]
  readonly service: string
  /** Parsed on arrival with the broker's limits. */
  readonly request: RequestEnvelope
  /** The frame as received; sent on as it is unless its budget must be rewritten. */
  readonly frame: Buffer
  /** `Date.now()` on arrival. */
  readonly receivedAt: number
  /**
   * Set for a plain 7/MDP request whose body is not zrpc: its body frames, passed on unopened to a
   * plain worker, whose one reply goes back as it is (the reference broker's behaviour). Its
   * `request` is the broker's own stand-in: an id of its own, no deadline.
   */
  readonly opaque?: readonly Buffer[]
}

/** Limits of {@link RequestQueues}; each has a documented default in broker.ts. */
export interface QueueBounds {
  readonly maxQueuePerService: number
  readonly maxQueuedBytesPerService: number
  readonly maxQueuedBytes: number
  readonly maxUnknownServices: number
}

/** Why a request could not be queued. */
export type QueueRefusal = 'queue-full' | 'queue-bytes' | 'total-bytes' | 'unknown-services'

interface Queue {
  requests: QueuedRequest[]
  bytes: number
}

/**
 * Per-service FIFOs with byte accounting.
 *
 * @example
 * const queues = new RequestQueues(bounds)
 * const refused = queues.add(req, hasWorker)
 * const next = queues.take('calc')
 */
export class RequestQueues {
  private readonly queues = new Map<string, Queue>()
  private totalBytes = 0

  constructor(private readonly bounds: QueueBounds) {}

  /** Bytes waiting across every service. */
  get bytes(): number {
    return this.totalBytes
  }

  /** Requests waiting for `service`. */
  depth(service: string): number {
    return this.queues.get(service)?.requests.length ?? 0
  }

  /** Bytes waiting for `service`. */
  bytesFor(service: string): number {
    return this.queues.get(service)?.bytes ?? 0
  }

  /** Names with waiting requests. */
  services(): IterableIterator<string> {
    return this.queues.keys()
  }

  /**
   * Queues `req`, or says which bound refused it. `workerless` counts the service names that wait
   * with no worker now; a new such name past `maxUnknownServices` is refused.
   */
  add(req: QueuedRequest, hasWorker: boolean, workerless: number): QueueRefusal | undefined {
    let queue = this.queues.get(req.service)
    if (queue === undefined && !hasWorker && workerless >= this.bounds.maxUnknownServices) return 'unknown-services'
    const bytes = req.frame.length
    if (queue !== undefined && queue.requests.length >= this.bounds.maxQueuePerService) return 'queue-full'
    if ((queue?.bytes ?? 0) + bytes > this.bounds.maxQueuedBytesPerService) return 'queue-bytes'
    if (this.totalBytes + bytes > this.bounds.maxQueuedBytes) return 'total-bytes'
    if (queue === undefined) {
      queue = { requests: [], bytes: 0 }
      this.queues.set(req.service, queue)
    }
    queue.requests.push(req)
    queue.bytes += bytes
    this.totalBytes += bytes
    return undefined
  }

  /** The oldest request for `service`, left in place. */
  peek(service: string): QueuedRequest | undefined {
    return this.queues.get(service)?.requests[0]
  }

  /** The oldest request for `service` that `test` accepts, removed (usually the first: a scan only past plain requests no worker takes yet). */
  takeFirst(service: string, test: (req: QueuedRequest) => boolean): QueuedRequest | undefined {
    const queue = this.queues.get(service)
    if (queue === undefined) return undefined
    const first = queue.requests[0]
    if (first !== undefined && test(first)) return this.take(service)
    const at = queue.requests.findIndex(test)
    if (at < 0) return undefined
    const [req] = queue.requests.splice(at, 1)
    this.forget(queue, req!)
    return req
  }

  /** The oldest request for `service`, removed. */
  take(service: string): QueuedRequest | undefined {
    const queue = this.queues.get(service)
    const req = queue?.requests.shift()
    if (queue === undefined || req === undefined) return undefined
    this.forget(queue, req)
    if (queue.requests.length === 0) this.queues.delete(service)
    return req
  }

  /** Removes and returns every request of `service` for which `test` holds. */
  removeWhere(service: string, test: (req: QueuedRequest) => boolean): QueuedRequest[] {
    const queue = this.queues.get(service)
    if (queue === undefined) return []
    const removed: QueuedRequest[] = []
    const kept: QueuedRequest[] = []
    for (const req of queue.requests) (test(req) ? removed : kept).push(req)
    if (removed.length === 0) return removed
    queue.requests = kept
    for (const req of removed) this.forget(queue, req)
    if (kept.length === 0) this.queues.delete(service)
    return removed
  }

  /** Removes this client's request `id` for `service` if it waits here (a CANCEL); true if it did. */
  cancel(service: string, clientKey: string, id: number): boolean {
    const queue = this.queues.get(service)
    if (queue === undefined) return false
    const at = queue.requests.findIndex((req) => req.request.id === id && req.clientKey === clientKey)
    if (at < 0) return false
    const [req] = queue.requests.splice(at, 1)
    this.forget(queue, req!)
    if (queue.requests.length === 0) this.queues.delete(service)
    return true
  }

  /** Removes everything (the broker is closing). */
  clear(): void {
    this.queues.clear()
    this.totalBytes = 0
  }

  private forget(queue: Queue, req: QueuedRequest): void {
    queue.bytes -= req.frame.length
    this.totalBytes -= req.frame.length
  }
}
