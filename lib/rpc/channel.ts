/**
 * A channel: one DEALER socket to one server endpoint, with its own pending-call table.
 *
 * Calls are written through the socket's send queue and matched to replies by id. Every call ends
 * exactly once: with its reply, an error from the server, its deadline, its caller's signal, a lost
 * connection, or the channel closing, whichever comes first; whatever arrives after that is dropped.
 *
 * ```
 *   DEALER  ->  [ frame: CBOR sequence of REQUEST / CANCEL envelopes ]
 *           <-  [ frame: CBOR sequence of REPLY / ERROR envelopes ]
 * ```
 * Through a Majordomo broker each frame rides in its own MDP client message instead (see framing.ts).
 * There a CANCEL cannot reach the worker: cancelling or timing out ends the call here only, and the
 * worker's `ctx.signal` aborts at the deadline, which travels in the request.
 */
import { Dealer } from 'zeromq'
import { RpcError } from '../errors.js'
import { DEFAULT_CBOR_LIMITS, type CborLimits } from '../codec/cbor.js'
import { Kind, encodeCancel, encodeRequest, parseFrame, type Metadata } from '../codec/envelope.js'
import { SendQueue } from '../transport/send-queue.js'
import { directFraming, type Framing } from './framing.js'

export interface ChannelOptions {
  readonly maxMessageSize: number
  readonly coalesce: boolean
  readonly sendHighWaterMark?: number
  /** How frames travel (default: direct to a zrpc server). */
  readonly framing?: Framing
}

export interface CallOptions {
  /** Absolute deadline, in ms since the epoch. */
  readonly deadline: number
  readonly signal?: AbortSignal | undefined
  readonly metadata?: Metadata | undefined
}

interface Pending {
  resolve(result: Uint8Array): void
  reject(err: RpcError): void
}

/** Counters a channel keeps; exposed through the client's stats. */
export interface ChannelStats {
  calls: number
  inFlight: number
  /** Replies for calls that had already ended (late, cancelled) or ids never sent: dropped quietly. */
  lateReplies: number
  /** Frames or envelopes from the server that could not be read. */
  malformed: number
}

export class Channel {
  private readonly socket: Dealer
  private readonly queue: SendQueue
  private readonly pending = new Map<number, Pending>()
  private readonly limits: CborLimits
  private readonly framing: Framing
  private closed = false
  /** Whether the connection is up, as far as libzmq's monitor has told us. */
  connected: boolean
  readonly stats: ChannelStats = { calls: 0, inFlight: 0, lateReplies: 0, malformed: 0 }

  constructor(
    readonly endpoint: string,
    private readonly nextId: () => number,
    private readonly options: ChannelOptions,
  ) {
    this.socket = new Dealer({
      linger: 0,
      maxMessageSize: options.maxMessageSize,
      sendHighWaterMark: options.sendHighWaterMark ?? 100_000,
      receiveHighWaterMark: 100_000,
    })
    this.limits = { ...DEFAULT_CBOR_LIMITS, maxBytes: options.maxMessageSize }
    this.framing = options.framing ?? directFraming
    this.queue = new SendQueue(this.socket, { coalesce: options.coalesce && this.framing.coalesce, maxFrameBytes: Math.min(256 * 1024, options.maxMessageSize) })
    // A connection that drops takes its in-flight calls with it: the server's replies would go to a
    // routing id that no longer exists. Fail them now instead of at their deadlines.
    this.socket.events.on('disconnect', () => {
      this.connected = false
      this.failAll('UNAVAILABLE', `connection to ${endpoint} lost; the call may or may not have run`, { connectionLost: true })
    })
    // inproc connections raise no monitor events; they exist as soon as both ends do.
    this.connected = endpoint.startsWith('inproc://')
    this.socket.events.on('connect', () => (this.connected = true))
    this.socket.connect(endpoint)
    void this.receiveLoop()
  }

  get inFlight(): number {
    return this.pending.size
  }

  /** Sends one call and resolves with the result bytes, or rejects with an RpcError. */
  call(service: string, method: string, params: Uint8Array, options: CallOptions): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new RpcError('CANCELLED', 'client is closed'))
    const { signal } = options
    if (signal?.aborted) return Promise.reject(new RpcError('CANCELLED', 'call cancelled before it was sent'))
    const remaining = Math.ceil(options.deadline - Date.now())
    if (remaining <= 0) return Promise.reject(new RpcError('DEADLINE_EXCEEDED', 'deadline passed before the call was sent'))

    const id = this.nextId()
    const frame = encodeRequest(id, service, method, remaining, options.metadata ?? null, params)
    if (frame.length > this.options.maxMessageSize) {
      return Promise.reject(new RpcError('RESOURCE_EXHAUSTED', `request of ${frame.length} bytes exceeds maxMessageSize ${this.options.maxMessageSize}`))
    }

    return new Promise<Uint8Array>((resolve, reject) => {
      const onAbort = (): void => {
        if (!this.pending.has(id)) return
        this.sendCancel(service, id)
        end()
        reject(new RpcError('CANCELLED', 'call cancelled by the caller'))
      }
      const end = (): void => {
        this.pending.delete(id)
        this.stats.inFlight = this.pending.size
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
      }
      this.pending.set(id, {
        resolve: (result) => {
          end()
          resolve(result)
        },
        reject: (err) => {
          end()
          reject(err)
        },
      })
      this.stats.calls++
      this.stats.inFlight = this.pending.size
      const timer = setTimeout(() => {
        // No CANCEL: the server holds the same budget and aborts the handler itself, with the reason
        // DEADLINE_EXCEEDED that its handler should see, at most one trip later.
        end()
        reject(new RpcError('DEADLINE_EXCEEDED', `deadline of ${remaining} ms exceeded calling ${service}.${method}`))
      }, remaining)
      signal?.addEventListener('abort', onAbort, { once: true })
      if (!this.framing.push(this.queue, service, frame)) {
        end()
        reject(new RpcError('RESOURCE_EXHAUSTED', 'send queue is full'))
      }
    })
  }

  /** Rejects every pending call with CANCELLED and closes the socket. */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.failAll('CANCELLED', 'client closed')
    this.socket.close()
  }

  private sendCancel(service: string, id: number): void {
    if (this.framing.canCancel) this.framing.push(this.queue, service, encodeCancel(id))
  }

  private failAll(code: 'CANCELLED' | 'UNAVAILABLE', message: string, details?: unknown): void {
    for (const call of [...this.pending.values()]) call.reject(new RpcError(code, message, details))
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const frames of this.socket) {
        const frame = this.framing.unwrap(frames)
        if (frame === undefined) {
          this.stats.malformed++
          continue
        }
        this.onFrame(frame)
      }
    } catch (err) {
      // Closing the socket ends the loop with an error; anything else while open is a real fault.
      if (!this.closed) this.failAll('UNAVAILABLE', `channel to ${this.endpoint} failed: ${String(err)}`)
    }
  }

  private onFrame(frame: Buffer): void {
    for (const env of parseFrame(frame, this.limits)) {
      if (env.kind === 'malformed') {
        this.stats.malformed++
        // A reply we cannot read still ends its call, if we know which call it was.
        if (env.id !== undefined) this.pending.get(env.id)?.reject(new RpcError('INTERNAL', `unreadable reply: ${env.reason}`))
        continue
      }
      const call = this.pending.get(env.id)
      if (call === undefined) {
        this.stats.lateReplies++
        continue
      }
      switch (env.kind) {
        case Kind.Reply:
          call.resolve(env.result)
          break
        case Kind.Error:
          call.reject(new RpcError(env.code, env.message, env.details ?? undefined))
          break
        case Kind.Request:
        case Kind.Cancel:
          this.stats.malformed++
          break
      }
    }
  }
}
