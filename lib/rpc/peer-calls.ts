/**
 * One call on the server (its context, signal and deadline timer) and the calls of one peer (what
 * that peer holds of the server's capacity). The dispatcher schedules them.
 *
 * ```
 *   PeerCalls ── live: id -> ActiveCall   (running or queued, not yet aborted: CANCEL and duplicate checks)
 *             ── queue: ActiveCall[]      (waiting for a handler slot, params held)
 *             ── running                  (handlers of this peer that have not settled, aborted ones too)
 * ```
 * A call whose caller has given up (deadline, CANCEL, peer gone) leaves `live` at once, so its id
 * may be used again, but its handler keeps counting in `running` until it settles: a peer cannot
 * free its share by cancelling calls whose handlers go on working.
 */
import { RpcError } from '../errors.js'
import { MAX_STREAM_CREDIT, type Metadata, type RequestEnvelope } from '../codec/envelope.js'
import type { Body } from '../transport/send-queue.js'
import type { CallDeadlines } from './dispatch-deadlines.js'
import type { PeerKey, RawHandler } from './dispatcher.js'

/** What a handler knows about the call it is serving. */
export interface CallContext {
  /** Aborts when the deadline passes, the caller cancels or goes away, or the server shuts down. */
  readonly signal: AbortSignal
  /** Absolute deadline in ms since the epoch, on this machine's clock. */
  readonly deadline: number
  /** The caller's metadata (empty object when none was sent). */
  readonly metadata: Metadata
  readonly service: string
  readonly method: string
  /**
   * Who is calling, as far as this server knows: with CURVE, the client's public key (Z85) once the
   * client has proved it holds it; through a broker, the key the broker authenticated.
   */
  readonly peer: PeerInfo
}

/** What a server knows of a caller. */
export interface PeerInfo {
  /** The caller's CURVE public key (Z85), when it authenticated with one. */
  readonly publicKey?: string
}

/**
 * Sends an envelope (bytes, or written when it leaves) back to the caller; `id` is the call's, for
 * transports that check sizes. `more` is true for a stream's ITEM: the call goes on after it.
 */
export type ReplyFn = (frame: Body, id: number, more?: boolean) => void

const NO_PEER_INFO: PeerInfo = Object.freeze({})

/** Bytes charged to a queued call on top of its params: the envelope, the call object, its closures. */
export const QUEUED_CALL_OVERHEAD_BYTES = 512

/** One call from arrival to its answer. */
export class ActiveCall implements CallContext {
  private controller: AbortController | undefined
  /** Whether this call's deadline waits on the dispatcher's wheel (its signal was read in time). */
  private timed = false
  private abortReason: RpcError | undefined
  /** Answered, dropped or given up: nothing more is sent for it. */
  ended = false
  /** Whether `peer.live` holds this call under its id. */
  inLive = false
  /** Params bytes; a queued call holds a copy, so it does not pin the whole received frame. */
  params: Uint8Array
  /** Bytes charged to the queue while the call waits (0 once it runs). */
  queuedBytes = 0
  readonly metadata: Metadata
  /** A stream's credit: ITEMs the caller lets it send now (the REQUEST's window, then CREDITs). */
  credit: number
  /** Wakes a stream waiting for credit, on a CREDIT or the call's end. */
  private wake: (() => void) | undefined
  /** The call key (latin1) while this call is entered running in the dispatcher's call record. */
  key: string | undefined = undefined
  /** Called once when the call is given up (a stream waiting for its next item stops waiting). */
  onGiveUp: (() => void) | undefined = undefined

  constructor(
    readonly request: RequestEnvelope,
    readonly reply: ReplyFn,
    readonly owner: PeerCalls,
    readonly deadline: number,
    readonly handler: RawHandler,
    readonly peer: PeerInfo = NO_PEER_INFO,
  ) {
    this.metadata = request.metadata ?? {}
    this.params = request.params
    this.credit = request.window ?? 0
  }

  /** Whether this call is a server stream (its REQUEST had a window). */
  get isStream(): boolean {
    return this.request.window !== undefined
  }

  /** A CREDIT: the caller lets this stream send `n` more items. */
  grant(n: number): void {
    this.credit = Math.min(this.credit + n, MAX_STREAM_CREDIT)
    this.wakeUp()
  }

  /** Resolves once the stream has credit or the call is given up (its deadline, a CANCEL, its peer gone). */
  creditOrEnd(): Promise<void> {
    if (this.credit > 0 || this.aborted) return Promise.resolve()
    return new Promise<void>((resolve) => (this.wake = resolve))
  }

  /** The reason the call was given up, once it was. */
  get reason(): RpcError | undefined {
    return this.abortReason
  }

  private wakeUp(): void {
    const wake = this.wake
    this.wake = undefined
    wake?.()
  }

  get id(): number {
    return this.request.id
  }
  get service(): string {
    return this.request.service
  }
  get method(): string {
    return this.request.method
  }

  // Made on first use: most handlers never look at their signal. Its deadline then joins the
  // dispatcher's wheel: one timer for all calls, not one per call.
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController()
      if (this.abortReason !== undefined) this.controller.abort(this.abortReason)
      else if (Date.now() > this.deadline) this.expire()
      else {
        this.timed = true
        this.owner.deadlines.add(this)
      }
    }
    return this.controller.signal
  }

  /** The deadline has passed (called by the wheel). */
  expire(): void {
    this.timed = false
    this.abort(new RpcError('DEADLINE_EXCEEDED', 'deadline exceeded'))
  }

  /** The caller has given up on this call: its deadline passed, it cancelled, or it went away. */
  get aborted(): boolean {
    return this.abortReason !== undefined || Date.now() > this.deadline
  }

  abort(reason: RpcError): void {
    if (this.abortReason !== undefined) return
    this.abortReason = reason
    this.dispose()
    this.controller?.abort(reason)
    this.wakeUp()
    const onGiveUp = this.onGiveUp
    this.onGiveUp = undefined
    onGiveUp?.()
  }

  dispose(): void {
    if (!this.timed) return
    this.timed = false
    this.owner.deadlines.remove(this)
  }
}

/** What one peer (a connection, or a broker worker) holds of the server. */
export class PeerCalls {
  /** Calls by id whose caller still waits for them. */
  readonly live = new Map<number, ActiveCall>()
  /** Calls waiting for a handler slot, oldest first. */
  readonly queue: ActiveCall[] = []
  /** Handlers of this peer's calls that have not settled, including calls already given up. */
  running = 0
  queuedBytes = 0
  /** Whether the dispatcher's round-robin ring holds this peer. */
  inRing = false

  constructor(
    readonly name: PeerKey,
    /** The dispatcher's wheel for the deadlines of calls whose signal was read. */
    readonly deadlines: CallDeadlines<ActiveCall>,
  ) {}

  /** Calls counted against this peer's share: running plus queued. */
  get held(): number {
    return this.running + this.queue.length
  }

  /** Enters `call` in `live` (its id must not be there). */
  enter(call: ActiveCall): void {
    call.inLive = true
    this.live.set(call.id, call)
  }

  /** Forgets `call`'s id if it is still the live call for it (a later call may reuse the id). */
  forget(call: ActiveCall): void {
    // Only the call entered under an id can be there: a later one is entered after this one is forgotten.
    if (!call.inLive) return
    call.inLive = false
    this.live.delete(call.id)
  }
}
