/**
 * The broker's workers: who serves which service, how many more requests each may take (its
 * credit), what each one holds, and when each expires.
 *
 * A plain 7/MDP worker has one credit: one request at a time, as MDP says. A zrpc worker declares
 * its credit in READY (docs/protocol.md, "credit workers") and holds up to that many at once.
 * Workers with credit left wait in a line per service; a dispatch takes the first and puts it back
 * last while it has credit left, so the requests of a burst spread over the workers in turn.
 *
 * A busy worker expires only once it has shown that it heartbeats while busy (credit workers say so
 * in READY; older zrpc workers beat as each request arrives): a plain MDP worker is silent while its
 * handler runs, and expiring it then would cut every long request short.
 */

/** A request a worker holds: enough to route and check its answer, not the body. */
export interface HeldRequest {
  readonly clientId: Buffer
  readonly service: string
  readonly id: number
  /** A plain 7/MDP request routed unopened: its reply goes back as it comes. */
  readonly opaque?: boolean
}

/** A registered worker. */
export interface Worker {
  readonly id: Buffer
  /** Routing id in hex, for events and `disconnectWorker()`. */
  readonly identity: string
  readonly service: string
  /** Requests it may hold at once: 1 for a plain MDP worker, its declared credit for a credit worker. */
  readonly credit: number
  /** Declared credit in READY: may get several requests in one message and answer them in any grouping. */
  readonly extended: boolean
  /** The frames in front of a reply to a client from this worker's service, one array for all (so replies join). */
  readonly replyHead: readonly Buffer[]
  expiresAt: number
  /** Requests held, by the client's routing id (latin1), then by call id. */
  readonly held: Map<string, Map<number, HeldRequest>>
  /** Number of requests in `held`. */
  holding: number
  /** In its service's line (has credit left and is not draining). */
  inLine: boolean
  /** Takes nothing new: sent DISCONNECT, or was asked to leave; it goes once its requests are answered. */
  draining: boolean
  /** Sent DISCONNECT itself while holding requests: it may go silent, so it expires like an idle one. */
  saidDisconnect: boolean
  beatsWhileBusy: boolean
  /** Clients (routing ids, latin1) whose authenticated key this worker has been told (AUTH on their behalf). */
  readonly told: Set<string>
}

/** Why a worker left. `kicked` is `disconnectWorker()`; `protocol-error` a second READY. */
export type WorkerLeftReason = 'expired' | 'disconnected' | 'kicked' | 'protocol-error'

interface ServiceWorkers {
  readonly all: Set<Worker>
  /** Workers with credit left, the next to take a request first. */
  readonly line: Worker[]
}

/**
 * Workers by routing id and by service.
 *
 * @example
 * const workers = new WorkerRegistry(7500)
 * const w = workers.add(id, 'calc', { credit: 32, replyHead })
 * const next = workers.next('calc')
 */
export class WorkerRegistry {
  private readonly byIdentity = new Map<string, Worker>()
  private readonly byService = new Map<string, ServiceWorkers>()

  constructor(private readonly expiryMs: number) {}

  get size(): number {
    return this.byIdentity.size
  }

  all(): IterableIterator<Worker> {
    return this.byIdentity.values()
  }

  get(identity: string): Worker | undefined {
    return this.byIdentity.get(identity)
  }

  /** Registers a READY worker, last in its service's line. `credit` undefined: a plain MDP worker. */
  add(id: Buffer, service: string, replyHead: readonly Buffer[], credit?: number): Worker {
    const worker: Worker = {
      id,
      identity: id.toString('hex'),
      service,
      credit: credit ?? 1,
      extended: credit !== undefined,
      replyHead,
      expiresAt: Date.now() + this.expiryMs,
      held: new Map(),
      holding: 0,
      inLine: true,
      draining: false,
      saidDisconnect: false,
      beatsWhileBusy: credit !== undefined,
      told: new Set(),
    }
    this.byIdentity.set(worker.identity, worker)
    let entry = this.byService.get(service)
    if (entry === undefined) {
      entry = { all: new Set(), line: [] }
      this.byService.set(service, entry)
    }
    entry.all.add(worker)
    entry.line.push(worker)
    return worker
  }

  /** Forgets a worker; returns the requests it held. */
  remove(worker: Worker): HeldRequest[] {
    this.byIdentity.delete(worker.identity)
    const entry = this.byService.get(worker.service)
    if (entry !== undefined) {
      entry.all.delete(worker)
      this.leaveLine(worker, entry)
      if (entry.all.size === 0) this.byService.delete(worker.service)
    }
    const held: HeldRequest[] = []
    for (const calls of worker.held.values()) for (const req of calls.values()) held.push(req)
    worker.held.clear()
    worker.holding = 0
    return held
  }

  /** Any message from a registered worker proves it alive. */
  heard(worker: Worker): void {
    worker.expiresAt = Date.now() + this.expiryMs
  }

  /** The worker to take the next request for `service`, if one has credit left. */
  next(service: string): Worker | undefined {
    return this.byService.get(service)?.line[0]
  }

  /**
   * Records that `worker` (from {@link next}) took `req`, whose client's routing id in latin1 is
   * `clientKey`. It goes to the back of the line, or out of it once its credit is used up.
   */
  hold(worker: Worker, clientKey: string, req: HeldRequest): void {
    let calls = worker.held.get(clientKey)
    if (calls === undefined) {
      calls = new Map()
      worker.held.set(clientKey, calls)
    }
    calls.set(req.id, req)
    worker.holding++
    const line = this.byService.get(worker.service)!.line
    // Usually the first in line; a plain request may have gone to a plain worker further back.
    if (line[0] === worker) line.shift()
    else line.splice(line.indexOf(worker), 1)
    if (worker.holding < worker.credit) line.push(worker)
    else worker.inLine = false
  }

  /** The request `worker` holds for this client and call id, released; undefined if it holds none. */
  release(worker: Worker, clientKey: string, id: number): HeldRequest | undefined {
    const calls = worker.held.get(clientKey)
    const req = calls?.get(id)
    if (req === undefined) return undefined
    calls!.delete(id)
    if (calls!.size === 0) worker.held.delete(clientKey)
    worker.holding--
    if (!worker.inLine && !worker.draining) {
      worker.inLine = true
      this.byService.get(worker.service)?.line.push(worker)
    }
    return req
  }

  /** The first plain MDP worker of `service` with credit left (for a plain request), if any. */
  nextPlain(service: string): Worker | undefined {
    return this.byService.get(service)?.line.find((w) => !w.extended)
  }

  /** The worker of `service` that holds this client's call `id`, if one does. */
  holder(service: string, clientKey: string, id: number): Worker | undefined {
    for (const worker of this.byService.get(service)?.all ?? []) if (worker.held.get(clientKey)?.has(id) === true) return worker
    return undefined
  }

  /** Whether `worker` holds this client's call `id`. */
  holds(worker: Worker, clientKey: string, id: number): boolean {
    return worker.held.get(clientKey)?.has(id) === true
  }

  /** For a plain MDP worker: the one request it holds, whoever it is for. */
  only(worker: Worker): { clientKey: string; req: HeldRequest } | undefined {
    for (const [clientKey, calls] of worker.held) for (const req of calls.values()) return { clientKey, req }
    return undefined
  }

  /** Stops routing to a worker; it stays registered until it leaves. */
  drain(worker: Worker): void {
    worker.draining = true
    const entry = this.byService.get(worker.service)
    if (entry !== undefined) this.leaveLine(worker, entry)
  }

  /** Workers of `service` that take new requests. */
  live(service: string): number {
    let n = 0
    for (const w of this.byService.get(service)?.all ?? []) if (!w.draining) n++
    return n
  }

  /** Plain MDP workers of `service` that take new requests: the only ones a plain request can go to. */
  livePlain(service: string): number {
    let n = 0
    for (const w of this.byService.get(service)?.all ?? []) if (!w.draining && !w.extended) n++
    return n
  }

  /** Workers of `service`, draining ones included. */
  count(service: string): number {
    return this.byService.get(service)?.all.size ?? 0
  }

  /** Workers of `service` with credit left. */
  idleCount(service: string): number {
    return this.byService.get(service)?.line.length ?? 0
  }

  /** Requests the workers of `service` hold now. */
  inFlight(service: string): number {
    let n = 0
    for (const w of this.byService.get(service)?.all ?? []) n += w.holding
    return n
  }

  services(): IterableIterator<string> {
    return this.byService.keys()
  }

  /** Workers silent past their expiry that may be declared dead now. */
  expired(now: number): Worker[] {
    const out: Worker[] = []
    for (const w of this.byIdentity.values()) if (w.expiresAt < now && (w.holding === 0 || w.beatsWhileBusy || w.saidDisconnect)) out.push(w)
    return out
  }

  private leaveLine(worker: Worker, entry: ServiceWorkers): void {
    if (!worker.inLine) return
    worker.inLine = false
    const at = entry.line.indexOf(worker)
    if (at >= 0) entry.line.splice(at, 1)
  }
}
