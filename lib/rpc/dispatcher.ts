/**
 * The server side of calls, independent of the socket they came on: a bounded number of handlers
 * run at once, a bounded queue waits behind them, each call gets a context whose signal aborts on
 * its deadline or on a CANCEL, and each call is answered exactly once.
 *
 * Transports (a bound ROUTER, a Majordomo worker) feed it parsed requests together with a function
 * that sends an encoded envelope back to that caller.
 */
import { RpcError, type StatusCode } from '../errors.js'
import { encodeError, encodeReply, type Metadata, type RequestEnvelope } from '../codec/envelope.js'

/** What a handler knows about the call it is serving. */
export interface CallContext {
  /** Aborts when the deadline passes, the caller cancels, or the server shuts down. */
  readonly signal: AbortSignal
  /** Absolute deadline in ms since the epoch, on this machine's clock. */
  readonly deadline: number
  /** The caller's metadata (empty object when none was sent). */
  readonly metadata: Metadata
  readonly service: string
  readonly method: string
}

/** A handler on bytes: params CBOR in, result CBOR out. The typed layer builds these. */
export type RawHandler = (params: Uint8Array, ctx: CallContext) => Promise<Uint8Array>

export type HandlerLookup = (service: string, method: string) => RawHandler | undefined

export interface DispatcherOptions {
  /** Handlers running at once (default 256). */
  readonly maxConcurrent?: number
  /** Calls waiting for a free slot (default 1024); past it a call fails fast with RESOURCE_EXHAUSTED. */
  readonly maxQueued?: number
  /** Sees every error a handler threw that was not an RpcError, before it is hidden as INTERNAL. */
  readonly onHandlerError?: (err: unknown, service: string, method: string) => void
}

/** Sends an encoded envelope back to the caller; `id` is the call's, for transports that check sizes. */
export type ReplyFn = (frame: Buffer, id: number) => void

export interface DispatcherStats {
  received: number
  completed: number
  failed: number
  rejectedBusy: number
  cancelled: number
  /** Results that came after their deadline or cancel and were not sent. */
  late: number
  running: number
  queued: number
}

class ActiveCall implements CallContext {
  private controller: AbortController | undefined
  private timer: NodeJS.Timeout | undefined
  private abortReason: RpcError | undefined
  ended = false
  readonly metadata: Metadata

  constructor(
    readonly request: RequestEnvelope,
    readonly reply: ReplyFn,
    readonly key: string,
    readonly deadline: number,
  ) {
    this.metadata = request.metadata ?? {}
  }

  get service(): string {
    return this.request.service
  }
  get method(): string {
    return this.request.method
  }

  // Made on first use: most handlers never look at their signal, and a timer per call is not free.
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController()
      if (this.abortReason !== undefined) this.controller.abort(this.abortReason)
      else {
        this.timer = setTimeout(() => this.abort(new RpcError('DEADLINE_EXCEEDED', 'deadline exceeded')), Math.max(0, this.deadline - Date.now()))
      }
    }
    return this.controller.signal
  }

  get aborted(): boolean {
    return this.abortReason !== undefined || Date.now() > this.deadline
  }

  abort(reason: RpcError): void {
    if (this.abortReason !== undefined) return
    this.abortReason = reason
    clearTimeout(this.timer)
    this.controller?.abort(reason)
  }

  dispose(): void {
    clearTimeout(this.timer)
  }
}

export class Dispatcher {
  private readonly active = new Map<string, ActiveCall>()
  private readonly waiting: ActiveCall[] = []
  private waitingHead = 0
  private running = 0
  private closing = false
  private drainedWaiters: Array<() => void> = []
  private readonly maxConcurrent: number
  private readonly maxQueued: number
  readonly stats: DispatcherStats = { received: 0, completed: 0, failed: 0, rejectedBusy: 0, cancelled: 0, late: 0, running: 0, queued: 0 }

  constructor(
    private readonly lookup: HandlerLookup,
    private readonly options: DispatcherOptions = {},
  ) {
    this.maxConcurrent = options.maxConcurrent ?? 256
    this.maxQueued = options.maxQueued ?? 1024
  }

  /** True while every handler slot is taken (new calls would queue). */
  get saturated(): boolean {
    return this.running >= this.maxConcurrent
  }

  /** Takes one request. `peer` names the caller's connection so its CANCELs find the call. */
  handle(request: RequestEnvelope, peer: string, reply: ReplyFn): void {
    this.stats.received++
    const fail = (code: StatusCode, message: string): void => {
      this.stats.failed++
      reply(encodeError(request.id, code, message), request.id)
    }
    if (this.closing) return fail('UNAVAILABLE', 'server is shutting down')
    if (this.lookup(request.service, request.method) === undefined) {
      return fail('UNIMPLEMENTED', `unknown method ${request.service}.${request.method}`)
    }
    if (request.timeoutMs === 0) return fail('DEADLINE_EXCEEDED', 'call arrived with no time left')
    const call = new ActiveCall(request, reply, callKey(peer, request.id), Date.now() + request.timeoutMs)
    if (this.running < this.maxConcurrent) {
      this.start(call)
    } else if (this.waiting.length - this.waitingHead < this.maxQueued) {
      this.active.set(call.key, call)
      this.waiting.push(call)
      this.stats.queued = this.waiting.length - this.waitingHead
    } else {
      this.stats.rejectedBusy++
      fail('RESOURCE_EXHAUSTED', `server busy: ${this.running} calls running and ${this.maxQueued} queued`)
    }
  }

  /** A CANCEL from `peer` for call `id`: aborts it if it still runs or waits. */
  cancel(peer: string, id: number): void {
    const call = this.active.get(callKey(peer, id))
    if (call === undefined || call.ended) return
    this.stats.cancelled++
    call.abort(new RpcError('CANCELLED', 'cancelled by the caller'))
  }

  /**
   * Stops taking calls, fails the queued ones, gives running ones `graceMs` to finish, then aborts
   * them and answers UNAVAILABLE.
   */
  async close(graceMs: number): Promise<void> {
    this.closing = true
    for (let i = this.waitingHead; i < this.waiting.length; i++) this.finish(this.waiting[i]!, encodeError(this.waiting[i]!.request.id, 'UNAVAILABLE', 'server is shutting down'))
    this.waiting.length = 0
    this.waitingHead = 0
    if (this.running > 0) {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        new Promise<void>((resolve) => this.drainedWaiters.push(resolve)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs))),
      ])
      clearTimeout(timer)
    }
    for (const call of [...this.active.values()]) {
      call.abort(new RpcError('UNAVAILABLE', 'server shut down before the call finished'))
      this.finish(call, encodeError(call.request.id, 'UNAVAILABLE', 'server shut down before the call finished'))
    }
  }

  private start(call: ActiveCall): void {
    const handler = this.lookup(call.request.service, call.request.method)
    this.active.set(call.key, call)
    this.running++
    this.stats.running = this.running
    if (handler === undefined) return this.settle(call, encodeError(call.request.id, 'UNIMPLEMENTED', 'method went away'))
    let result: Promise<Uint8Array>
    try {
      result = handler(call.request.params, call)
    } catch (err) {
      result = Promise.reject(err)
    }
    result.then(
      (bytes) => this.settle(call, encodeReply(call.request.id, bytes), true),
      (err: unknown) => this.settle(call, this.errorFrame(call, err)),
    )
  }

  private errorFrame(call: ActiveCall, err: unknown): Buffer {
    if (err instanceof RpcError) {
      try {
        return encodeError(call.request.id, err.code, err.message, err.details)
      } catch {
        return encodeError(call.request.id, err.code, err.message)
      }
    }
    this.options.onHandlerError?.(err, call.service, call.method)
    return encodeError(call.request.id, 'INTERNAL', `internal error in ${call.service}.${call.method}`)
  }

  private settle(call: ActiveCall, frame: Buffer, ok = false): void {
    this.running--
    this.stats.running = this.running
    if (call.ended) this.stats.late++
    else if (call.aborted) {
      // The caller has already ended this call (deadline or cancel): a reply would be dropped there.
      this.stats.late++
      call.ended = true
      this.active.delete(call.key)
      call.dispose()
    } else this.finish(call, frame, ok)
    this.next()
    if (this.running === 0) for (const resolve of this.drainedWaiters.splice(0)) resolve()
  }

  private finish(call: ActiveCall, frame: Buffer, ok = false): void {
    if (call.ended) return
    call.ended = true
    call.dispose()
    this.active.delete(call.key)
    if (ok) this.stats.completed++
    else this.stats.failed++
    call.reply(frame, call.request.id)
  }

  private next(): void {
    while (this.running < this.maxConcurrent && this.waitingHead < this.waiting.length) {
      const call = this.waiting[this.waitingHead++]!
      if (this.waitingHead > 1024 && this.waitingHead * 2 > this.waiting.length) {
        this.waiting.splice(0, this.waitingHead)
        this.waitingHead = 0
      }
      if (call.ended) continue
      if (call.aborted) {
        // Its deadline passed or it was cancelled while it waited: never start it.
        call.ended = true
        this.active.delete(call.key)
        this.stats.late++
        continue
      }
      this.start(call)
    }
    if (this.waitingHead === this.waiting.length) {
      // Drained: drop the references to calls already taken, so their buffers can be collected.
      this.waiting.length = 0
      this.waitingHead = 0
    }
    this.stats.queued = this.waiting.length - this.waitingHead
  }
}

function callKey(peer: string, id: number): string {
  return `${peer}/${id}`
}
