/**
 * The server side of calls, independent of the socket they came on: a bounded number of handlers
 * run at once, a bounded queue waits behind them, each call gets a context whose signal aborts on
 * its deadline, a CANCEL or its peer leaving, and each call is answered at most once.
 *
 * Transports (a bound ROUTER, a Majordomo worker) feed it parsed requests together with the name
 * of the peer they came from and a function that sends an encoded envelope back to that caller.
 *
 * Fair share, so that one peer cannot starve the others:
 * - a peer holds at most `maxPerPeer` calls, running plus queued;
 * - a peer runs at most `maxConcurrentPerPeer` handlers at once (by default three quarters of
 *   `maxConcurrent`), so some slots are always left for other peers;
 * - queued calls start in turn, one per peer with waiting calls (round robin);
 * - queued calls hold their params: at most `maxQueuedBytes` in total and `maxQueuedBytesPerPeer` per peer.
 * Every refusal of a call that never started is `RESOURCE_EXHAUSTED` or `UNAVAILABLE` with
 * details `{ notStarted: true }`: the caller may retry it anywhere.
 */
import { RpcError, type StatusCode } from '../errors.js'
import { Kind, LazyReply, encodeError, readEnvelopeWithCbor, type RequestEnvelope } from '../codec/envelope.js'
import type { Body } from '../transport/send-queue.js'
import { atDeadline } from './deadline-timer.js'
import { CallDeadlines } from './dispatch-deadlines.js'
import { ActiveCall, PeerCalls, QUEUED_CALL_OVERHEAD_BYTES, type CallContext, type PeerInfo, type ReplyFn } from './peer-calls.js'
import { pumpStream } from './stream-pump.js'
import { CallRecord, type CallRecordOptions, type CallRecordStats, type RecordedOutcome } from './call-record.js'

export type { CallContext, PeerInfo, ReplyFn } from './peer-calls.js'

/**
 * A handler on bytes: params CBOR in, result CBOR out. The typed layer builds these. A handler that
 * has its result at once may return it (or throw) without a promise: the call is answered on the spot.
 */
export type RawUnaryHandler = ((params: Uint8Array, ctx: CallContext) => Promise<Uint8Array> | Uint8Array) & { readonly stream?: undefined }

/** A stream's handler on bytes: params CBOR in, an iterator of item CBOR out (pulled only with credit). */
export type RawStreamHandler = ((params: Uint8Array, ctx: CallContext) => AsyncIterator<Uint8Array>) & { readonly stream: true }

export type RawHandler = RawUnaryHandler | RawStreamHandler

/**
 * Names the caller's connection: a number the transport interned for it once (a ROUTER peer), or a
 * string (a broker worker's broker, an admin client). Numbers keep the per-call lookups cheap.
 */
export type PeerKey = number | string

export type HandlerLookup = (service: string, method: string) => RawHandler | undefined

export interface DispatcherOptions {
  /** Handlers running at once (default 256). */
  readonly maxConcurrent?: number
  /** Calls waiting for a free slot (default 1024); past it a call fails fast with RESOURCE_EXHAUSTED. */
  readonly maxQueued?: number
  /** Calls one peer may hold, running plus queued (default max(16, ceil((maxConcurrent + maxQueued) / 4)). */
  readonly maxPerPeer?: number
  /** Handlers one peer may run at once (default max(1, ceil(maxConcurrent * 3 / 4))); its other calls wait. */
  readonly maxConcurrentPerPeer?: number
  /** Bytes of params the queued calls may hold in total (default 64 MiB). */
  readonly maxQueuedBytes?: number
  /** Bytes of params one peer's queued calls may hold (default a quarter of maxQueuedBytes). */
  readonly maxQueuedBytesPerPeer?: number
  /** Sees every error a handler threw that was not an RpcError, before it is hidden as INTERNAL. */
  readonly onHandlerError?: (err: unknown, service: string, method: string) => void
  /**
   * The record of calls by call key (docs/protocol.md, "Retries and the call record"): a retry of a
   * call this server ran or runs gets that run's outcome (defaults: 16 MiB, 60 s); false: none.
   */
  readonly callRecord?: CallRecordOptions | false
}

export interface DispatcherStats {
  received: number
  completed: number
  failed: number
  /** Refused: every handler slot and queue place taken. */
  rejectedBusy: number
  /** Refused: the peer held its share (`maxPerPeer`). */
  rejectedPeerShare: number
  /** Refused: the queue's bytes bound (total or per peer) was reached. */
  rejectedBytes: number
  /** Refused: the server was shutting down. */
  rejectedClosing: number
  /** REQUESTs reusing the id of a call of the same peer still in progress: dropped, nothing sent. */
  duplicateIds: number
  cancelled: number
  /** Calls cancelled because their peer went away (running ones aborted, queued ones dropped). */
  peerGone: number
  /** Keyed calls whose caller went away while they ran: they ran on, so a retry gets their outcome. */
  keptForRetry: number
  /** Results that came after their deadline or cancel and were not sent, and queued calls that expired. */
  late: number
  running: number
  queued: number
  queuedBytes: number
  /** Peers holding calls now. */
  peers: number
  /** The call record: retries answered from it (`replayed`), retries that waited for the first run (`joined`), its entries and bytes. */
  record: CallRecordStats | undefined
}

export const DISPATCHER_DEFAULTS = { maxConcurrent: 256, maxQueued: 1024, maxQueuedBytes: 64 * 1024 * 1024 } as const

const NOT_STARTED = { notStarted: true } as const

export class Dispatcher {
  private readonly peers = new Map<PeerKey, PeerCalls>()
  private readonly deadlines = new CallDeadlines<ActiveCall>()
  /** Peers with queued calls, served in turn from `cursor`. */
  private readonly ring: PeerCalls[] = []
  private cursor = 0
  private running = 0
  private queued = 0
  private queuedBytes = 0
  private closing = false
  private drainedWaiters: Array<() => void> = []
  /** Whether `next()` is filling slots: a handler that answers at once must not re-enter it. */
  private filling = false
  private readonly maxConcurrent: number
  private readonly maxQueued: number
  private readonly maxPerPeer: number
  private readonly maxConcurrentPerPeer: number
  private readonly maxQueuedBytes: number
  private readonly maxQueuedBytesPerPeer: number
  private readonly record: CallRecord<KeyWaiter> | undefined
  private readonly counters: Omit<DispatcherStats, 'running' | 'queued' | 'queuedBytes' | 'peers' | 'record'> = {
    received: 0,
    completed: 0,
    failed: 0,
    rejectedBusy: 0,
    rejectedPeerShare: 0,
    rejectedBytes: 0,
    rejectedClosing: 0,
    duplicateIds: 0,
    cancelled: 0,
    peerGone: 0,
    keptForRetry: 0,
    late: 0,
  }

  constructor(
    private readonly lookup: HandlerLookup,
    private readonly options: DispatcherOptions = {},
  ) {
    this.maxConcurrent = options.maxConcurrent ?? DISPATCHER_DEFAULTS.maxConcurrent
    this.maxQueued = options.maxQueued ?? DISPATCHER_DEFAULTS.maxQueued
    this.maxPerPeer = options.maxPerPeer ?? Math.max(16, Math.ceil((this.maxConcurrent + this.maxQueued) / 4))
    this.maxConcurrentPerPeer = options.maxConcurrentPerPeer ?? Math.max(1, Math.ceil((this.maxConcurrent * 3) / 4))
    this.maxQueuedBytes = options.maxQueuedBytes ?? DISPATCHER_DEFAULTS.maxQueuedBytes
    this.maxQueuedBytesPerPeer = options.maxQueuedBytesPerPeer ?? Math.ceil(this.maxQueuedBytes / 4)
    this.record = options.callRecord === false ? undefined : new CallRecord<KeyWaiter>(options.callRecord)
    for (const [name, value] of Object.entries({ maxConcurrent: this.maxConcurrent, maxPerPeer: this.maxPerPeer, maxConcurrentPerPeer: this.maxConcurrentPerPeer })) {
      if (!(Number.isInteger(value) && value >= 1)) throw new TypeError(`${name} must be a positive integer, got ${value}`)
    }
    for (const [name, value] of Object.entries({ maxQueued: this.maxQueued, maxQueuedBytes: this.maxQueuedBytes, maxQueuedBytesPerPeer: this.maxQueuedBytesPerPeer })) {
      if (!(Number.isInteger(value) && value >= 0)) throw new TypeError(`${name} must be a non-negative integer, got ${value}`)
    }
  }

  get stats(): DispatcherStats {
    return {
      ...this.counters,
      running: this.running,
      queued: this.queued,
      queuedBytes: this.queuedBytes,
      peers: [...this.peers.keys()].filter((peer) => this.holds(peer)).length,
      record: this.record?.stats,
    }
  }

  /** Takes one request. `peer` names the caller's connection, so its CANCELs and its leaving find its calls. */
  handle(request: RequestEnvelope, peer: PeerKey, reply: ReplyFn, caller?: PeerInfo): void {
    this.counters.received++
    let calls = this.peers.get(peer)
    if (calls !== undefined) {
      const existing = calls.live.get(request.id)
      if (existing !== undefined) {
        // Any answer with this id would end the first call at the client: send nothing.
        if (!existing.aborted) return void this.counters.duplicateIds++
        calls.forget(existing)
      }
    }
    if (this.closing) {
      this.counters.rejectedClosing++
      return this.refuse(request, reply, 'UNAVAILABLE', 'server is shutting down; the call was not started, retry it on another server', NOT_STARTED)
    }
    const handler = this.lookup(request.service, request.method)
    if (handler === undefined) return this.refuse(request, reply, 'UNIMPLEMENTED', `unknown method ${request.service}.${request.method}`)
    if ((handler.stream === true) !== (request.window !== undefined)) {
      const [is, says] = handler.stream === true ? ['a stream', 'unary'] : ['unary', 'a stream']
      return this.refuse(request, reply, 'FAILED_PRECONDITION', `${request.service}.${request.method} is ${is} here, but the caller's contract says ${says}`)
    }
    if (request.timeoutMs === 0) return this.refuse(request, reply, 'DEADLINE_EXCEEDED', 'call arrived with no time left')
    // A retry of a call this server ran, or runs: its outcome, not a second run.
    const key = request.key !== undefined && handler.stream !== true && this.record !== undefined ? Buffer.from(request.key).toString('latin1') : undefined
    if (key !== undefined) {
      const known = this.record!.lookup(key, Date.now())
      if (known?.state === 'done') return reply(outcomeFrame(request.id, known.outcome), request.id)
      if (known?.state === 'running') {
        if (this.record!.wait(key, { id: request.id, reply })) return
        return this.refuse(request, reply, 'ABORTED', 'this call is already running here, with as many retries waiting for it as allowed')
      }
    }
    if (calls === undefined) {
      calls = new PeerCalls(peer, this.deadlines)
      this.peers.set(peer, calls)
    }
    if (calls.held >= this.maxPerPeer) {
      this.counters.rejectedPeerShare++
      this.release(calls)
      return this.refuse(request, reply, 'RESOURCE_EXHAUSTED', `this caller already holds ${calls.held} calls, its share of the server (maxPerPeer ${this.maxPerPeer}); wait for some to finish`, NOT_STARTED)
    }
    if (this.running < this.maxConcurrent && calls.running < this.maxConcurrentPerPeer && calls.queue.length === 0) {
      // Not in `live` yet: a handler that answers at once is done before any CANCEL or duplicate could
      // arrive, so only a call still running when its handler returns is entered there (in start()).
      return this.start(this.keyed(new ActiveCall(request, reply, calls, Date.now() + request.timeoutMs, handler, caller), key))
    }
    if (this.queued >= this.maxQueued) {
      this.counters.rejectedBusy++
      this.release(calls)
      return this.refuse(request, reply, 'RESOURCE_EXHAUSTED', `server busy: ${this.running} calls running and ${this.queued} queued`, NOT_STARTED)
    }
    const bytes = request.params.length + QUEUED_CALL_OVERHEAD_BYTES
    if (this.queuedBytes + bytes > this.maxQueuedBytes || calls.queuedBytes + bytes > this.maxQueuedBytesPerPeer) {
      this.counters.rejectedBytes++
      this.release(calls)
      return this.refuse(request, reply, 'RESOURCE_EXHAUSTED', `server busy: queued params would exceed maxQueuedBytes ${this.maxQueuedBytes} (${this.maxQueuedBytesPerPeer} per caller)`, NOT_STARTED)
    }
    const call = this.keyed(new ActiveCall(request, reply, calls, Date.now() + request.timeoutMs, handler, caller), key)
    // A copy, so a small queued call does not keep its whole received frame alive (Buffer#slice would be a view).
    if (call.params.byteLength < call.params.buffer.byteLength) call.params = Uint8Array.prototype.slice.call(call.params)
    call.queuedBytes = bytes
    this.queuedBytes += bytes
    calls.queuedBytes += bytes
    this.queued++
    calls.queue.push(call)
    calls.enter(call)
    if (!calls.inRing) {
      calls.inRing = true
      this.ring.push(calls)
    }
  }

  /**
   * True, and counted in `duplicateIds`, when `peer` has call `id` in progress: a REQUEST with that id
   * is dropped, as {@link handle} drops it. For a caller that keeps state per request (a broker worker).
   */
  isDuplicate(peer: PeerKey, id: number): boolean {
    const existing = this.peers.get(peer)?.live.get(id)
    if (existing === undefined || existing.aborted) return false
    this.counters.duplicateIds++
    return true
  }

  /** Answers a request that never became a call. */
  private refuse(request: RequestEnvelope, reply: ReplyFn, code: StatusCode, message: string, details?: object): void {
    this.counters.failed++
    reply(encodeError(request.id, code, message, details), request.id)
  }

  /** A CANCEL from `peer` for call `id`: aborts it if it still runs, drops it if it waits. */
  cancel(peer: PeerKey, id: number): void {
    const calls = this.peers.get(peer)
    const call = calls?.live.get(id)
    if (calls === undefined || call === undefined || call.ended) return
    this.counters.cancelled++
    this.giveUp(call, new RpcError('CANCELLED', 'cancelled by the caller'))
    this.release(calls)
  }

  /** A CREDIT from `peer` for stream `id`: it may send `n` more items. Ignored for any other call. */
  credit(peer: PeerKey, id: number, n: number): void {
    const call = this.peers.get(peer)?.live.get(id)
    if (call !== undefined && call.isStream && !call.ended) call.grant(n)
  }

  /** `peer` went away: its running calls are aborted (CANCELLED), its queued ones dropped; nothing is sent. */
  peerLeft(peer: PeerKey): void {
    const calls = this.peers.get(peer)
    if (calls === undefined) return
    this.peers.delete(peer)
    const reason = new RpcError('CANCELLED', 'the caller went away')
    for (const call of [...calls.live.values()]) {
      // A keyed call that already runs goes on (to its deadline at most): its caller may retry it on a
      // new connection, and then gets this run's outcome instead of a second run.
      if (call.key !== undefined && call.queuedBytes === 0) {
        this.counters.keptForRetry++
        calls.forget(call)
        continue
      }
      this.counters.peerGone++
      this.giveUp(call, reason)
    }
  }

  /** Whether `peer` holds calls (running, queued, or given up with handlers still running). */
  holds(peer: PeerKey): boolean {
    const calls = this.peers.get(peer)
    return calls !== undefined && (calls.held > 0 || calls.live.size > 0)
  }

  /** Refuses new calls from now on (UNAVAILABLE, `{ notStarted: true }`); running and queued ones go on. */
  stopTaking(): void {
    this.closing = true
  }

  /**
   * Stops taking calls, fails the queued ones (UNAVAILABLE, not started), gives running ones
   * `graceMs` to finish, then aborts them and answers UNAVAILABLE. Never waits longer than `graceMs`.
   */
  async close(graceMs: number): Promise<void> {
    this.closing = true
    for (const calls of this.ring) {
      for (const call of calls.queue.splice(0)) {
        this.unqueue(call)
        this.finish(call, encodeError(call.id, 'UNAVAILABLE', 'server shut down before the call started; retry it on another server', NOT_STARTED))
      }
      calls.inRing = false
      this.release(calls)
    }
    this.ring.length = 0
    // A stream may never end by itself (a tail): streams end now, unary calls get the grace period.
    for (const calls of this.peers.values()) {
      for (const call of [...calls.live.values()]) {
        if (!call.isStream) continue
        call.abort(new RpcError('UNAVAILABLE', 'server is shutting down'))
        this.finish(call, encodeError(call.id, 'UNAVAILABLE', 'server shut down during the stream; the items already sent stand'))
      }
    }
    if (this.running > 0) {
      let timer: { clear(): void } | undefined
      await Promise.race([
        new Promise<void>((resolve) => this.drainedWaiters.push(resolve)),
        new Promise<void>((resolve) => (timer = atDeadline(Date.now() + Math.max(0, graceMs), resolve))),
      ])
      timer?.clear()
    }
    for (const calls of this.peers.values()) {
      for (const call of [...calls.live.values()]) {
        call.abort(new RpcError('UNAVAILABLE', 'server shut down before the call finished'))
        this.finish(call, encodeError(call.id, 'UNAVAILABLE', 'server shut down before the call finished'))
      }
    }
  }

  private start(call: ActiveCall): void {
    this.running++
    call.owner.running++
    let result: Promise<Uint8Array> | Uint8Array
    try {
      const handler = call.handler
      result = handler.stream === true ? pumpStream(call, handler(call.params, call)) : handler(call.params, call)
    } catch (err) {
      return this.settle(call, this.errorFrame(call, err))
    }
    // The reply is written into the outgoing frame when it leaves: no Buffer per reply.
    if (result instanceof Uint8Array) return this.settle(call, new LazyReply(call.id, result), true)
    if (!call.inLive) call.owner.enter(call)
    result.then(
      (bytes) => this.settle(call, new LazyReply(call.id, bytes), true),
      (err: unknown) => this.settle(call, this.errorFrame(call, err)),
    )
  }

  private errorFrame(call: ActiveCall, err: unknown): Buffer {
    if (err instanceof RpcError) {
      try {
        return encodeError(call.id, err.code, err.message, err.details)
      } catch {
        return encodeError(call.id, err.code, err.message)
      }
    }
    this.options.onHandlerError?.(err, call.service, call.method)
    return encodeError(call.id, 'INTERNAL', `internal error in ${call.service}.${call.method}`)
  }

  private settle(call: ActiveCall, frame: Body, ok = false): void {
    this.running--
    call.owner.running--
    if (call.ended) this.counters.late++
    else if (call.aborted) {
      // The caller has already ended this call (deadline, cancel, gone): a reply would be dropped there.
      this.counters.late++
      this.end(call)
    } else this.finish(call, frame, ok)
    this.release(call.owner)
    if (this.ring.length > 0) this.next()
    if (this.running === 0 && this.drainedWaiters.length > 0) for (const resolve of this.drainedWaiters.splice(0)) resolve()
  }

  /** Ends a call the caller gave up on: a queued one leaves the queue, a running one has its signal aborted. */
  private giveUp(call: ActiveCall, reason: RpcError): void {
    call.abort(reason)
    call.owner.forget(call)
    if (call.queuedBytes > 0) {
      const at = call.owner.queue.indexOf(call)
      if (at >= 0) call.owner.queue.splice(at, 1)
      this.unqueue(call)
      this.end(call)
    }
  }

  private unqueue(call: ActiveCall): void {
    this.queued--
    this.queuedBytes -= call.queuedBytes
    call.owner.queuedBytes -= call.queuedBytes
    call.queuedBytes = 0
  }

  private end(call: ActiveCall): void {
    call.ended = true
    call.dispose()
    call.owner.forget(call)
    // Ended without an outcome to replay (never started, cancelled, past its deadline): retries waiting for it get why.
    if (call.key !== undefined) {
      const reason = call.reason ?? new RpcError('DEADLINE_EXCEEDED', 'deadline exceeded')
      for (const waiter of this.record!.abandon(call.key)) waiter.reply(encodeError(waiter.id, reason.code, reason.message, reason.details), waiter.id)
      call.key = undefined
    }
  }

  private finish(call: ActiveCall, frame: Body, ok = false): void {
    if (call.ended) return
    const key = call.key
    call.key = undefined
    this.end(call)
    if (ok) this.counters.completed++
    else this.counters.failed++
    call.reply(frame, call.id)
    if (key !== undefined) {
      const outcome = recordedOutcome(frame, ok)
      // A call refused before it started (shutdown) did not run: nothing to replay, a retry may run it.
      const waiters = notStarted(outcome) ? this.record!.abandon(key) : this.record!.finish(key, outcome, Date.now())
      for (const waiter of waiters) waiter.reply(outcomeFrame(waiter.id, outcome), waiter.id)
    }
  }

  /** Enters a keyed call in the record as running. */
  private keyed(call: ActiveCall, key: string | undefined): ActiveCall {
    if (key !== undefined) {
      this.record!.begin(key, Date.now())
      call.key = key
    }
    return call
  }

  /**
   * Drops a peer's entry once it holds nothing, so peers that come and go leave no trace. A numbered
   * peer (a listener's connection) keeps its entry until {@link Dispatcher.peerLeft}: a caller whose
   * calls are answered one at a time would otherwise build a new entry per call. The listener drops
   * idle ones too (inproc peers never say they left).
   */
  private release(calls: PeerCalls): void {
    if (typeof calls.name === 'number') return
    if (calls.held === 0 && calls.live.size === 0 && this.peers.get(calls.name) === calls) this.peers.delete(calls.name)
  }

  /** Fills free handler slots from the queue, one call per peer in turn. */
  private next(): void {
    // A handler that answers at once settles inside start(), which calls next() again: the loop here goes on instead.
    if (this.filling) return
    this.filling = true
    try {
      this.fill()
    } finally {
      this.filling = false
    }
  }

  private fill(): void {
    let passed = 0
    while (this.running < this.maxConcurrent && this.ring.length > 0 && passed < this.ring.length) {
      if (this.cursor >= this.ring.length) this.cursor = 0
      const calls = this.ring[this.cursor]!
      if (calls.running >= this.maxConcurrentPerPeer && calls.queue.length > 0) {
        this.cursor++
        passed++
        continue
      }
      const call = calls.queue.shift()
      if (calls.queue.length === 0) {
        this.ring.splice(this.cursor, 1)
        calls.inRing = false
      } else this.cursor++
      passed = 0
      if (call === undefined) continue
      this.unqueue(call)
      if (call.ended) continue
      if (call.aborted) {
        // Its deadline passed while it waited: never start it.
        this.counters.late++
        this.end(call)
        this.release(calls)
        continue
      }
      this.start(call)
    }
  }
}

/** A retry waiting for the first run of its call key: its own id, and where its answer goes. */
interface KeyWaiter {
  readonly id: number
  readonly reply: ReplyFn
}

/** A finished call's answer as the record keeps it: the result bytes, or the error's parts. */
function recordedOutcome(frame: Body, ok: boolean): RecordedOutcome {
  if (ok && frame instanceof LazyReply) return { ok: true, result: frame.result }
  // Errors are rare here: read the parts back from the envelope already written.
  const env = frame instanceof Buffer ? readEnvelopeWithCbor(frame) : undefined
  if (env?.kind === Kind.Error) return { ok: false, code: env.code, message: env.message, details: env.details }
  return { ok: false, code: 'INTERNAL', message: 'the first run of this call ended in a way that cannot be replayed', details: null }
}

function notStarted(outcome: RecordedOutcome): boolean {
  return !outcome.ok && typeof outcome.details === 'object' && outcome.details !== null && (outcome.details as { notStarted?: unknown }).notStarted === true
}

/** The answer to call `id` from a recorded outcome. */
function outcomeFrame(id: number, outcome: RecordedOutcome): Body {
  return outcome.ok ? new LazyReply(id, outcome.result) : encodeError(id, outcome.code, outcome.message, outcome.details ?? undefined)
}
