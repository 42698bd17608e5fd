/**
 * The broker's workers: who serves which service, which are idle (least recently used first),
 * what each one holds, and when each expires.
 *
 * A busy worker expires only once it has shown that it heartbeats while busy (zrpc's workers beat
 * as each request arrives and answer the broker's beats): a plain MDP worker is silent while its
 * handler runs, and expiring it then would cut every long request short.
 */

/** The one request a worker holds: enough to route and check its reply, not the body. */
export interface HeldRequest {
  readonly clientId: Buffer
  readonly service: string
  readonly id: number
}

/** A registered worker. */
export interface Worker {
  readonly id: Buffer
  /** Routing id in hex, for events and `disconnectWorker()`. */
  readonly identity: string
  readonly service: string
  expiresAt: number
  busy: HeldRequest | undefined
  /** Takes nothing new: sent DISCONNECT, or was asked to leave; it goes once its request is answered. */
  draining: boolean
  /** Sent DISCONNECT itself while holding a request: it may go silent, so it expires like an idle one. */
  saidDisconnect: boolean
  beatsWhileBusy: boolean
}

/** Why a worker left. `kicked` is `disconnectWorker()`; `protocol-error` a second READY. */
export type WorkerLeftReason = 'expired' | 'disconnected' | 'kicked' | 'protocol-error'

/**
 * Workers by routing id and by service.
 *
 * @example
 * const workers = new WorkerRegistry(7500)
 * const w = workers.add(id, 'calc')
 * const next = workers.takeIdle('calc')
 */
export class WorkerRegistry {
  private readonly byIdentity = new Map<string, Worker>()
  private readonly byService = new Map<string, { all: Set<Worker>; idle: Worker[] }>()

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

  /** Registers a READY worker as idle, last in line. */
  add(id: Buffer, service: string): Worker {
    const worker: Worker = { id, identity: id.toString('hex'), service, expiresAt: Date.now() + this.expiryMs, busy: undefined, draining: false, saidDisconnect: false, beatsWhileBusy: false }
    this.byIdentity.set(worker.identity, worker)
    let entry = this.byService.get(service)
    if (entry === undefined) {
      entry = { all: new Set(), idle: [] }
      this.byService.set(service, entry)
    }
    entry.all.add(worker)
    entry.idle.push(worker)
    return worker
  }

  /** Forgets a worker; returns the request it held, if any. */
  remove(worker: Worker): HeldRequest | undefined {
    this.byIdentity.delete(worker.identity)
    const entry = this.byService.get(worker.service)
    if (entry !== undefined) {
      entry.all.delete(worker)
      const at = entry.idle.indexOf(worker)
      if (at >= 0) entry.idle.splice(at, 1)
      if (entry.all.size === 0) this.byService.delete(worker.service)
    }
    const held = worker.busy
    worker.busy = undefined
    return held
  }

  /** Any message from a registered worker proves it alive. */
  heard(worker: Worker): void {
    worker.expiresAt = Date.now() + this.expiryMs
  }

  /** The least recently used idle worker for `service`, removed from the idle line. */
  takeIdle(service: string): Worker | undefined {
    return this.byService.get(service)?.idle.shift()
  }

  hasIdle(service: string): boolean {
    return (this.byService.get(service)?.idle.length ?? 0) > 0
  }

  /** Puts a worker that answered back in line, last. */
  release(worker: Worker): void {
    this.byService.get(worker.service)?.idle.push(worker)
  }

  /** Stops routing to a worker; it stays registered until it leaves. */
  drain(worker: Worker): void {
    worker.draining = true
    const entry = this.byService.get(worker.service)
    const at = entry?.idle.indexOf(worker) ?? -1
    if (at >= 0) entry!.idle.splice(at, 1)
  }

  /** Workers of `service` that take new requests. */
  live(service: string): number {
    let n = 0
    for (const w of this.byService.get(service)?.all ?? []) if (!w.draining) n++
    return n
  }

  /** Workers of `service`, draining ones included. */
  count(service: string): number {
    return this.byService.get(service)?.all.size ?? 0
  }

  /** Idle workers of `service`. */
  idleCount(service: string): number {
    return this.byService.get(service)?.idle.length ?? 0
  }

  services(): IterableIterator<string> {
    return this.byService.keys()
  }

  /** Workers silent past their expiry that may be declared dead now. */
  expired(now: number): Worker[] {
    const out: Worker[] = []
    for (const w of this.byIdentity.values()) if (w.expiresAt < now && (w.busy === undefined || w.beatsWhileBusy || w.saidDisconnect)) out.push(w)
    return out
  }
}
