/**
 * The client side of a server stream: an async iterator over the items, with credit flow control.
 *
 * ```
 *   for await (const item of svc.tail(params))   next() ── first call: REQUEST (window W) ──► server
 *                                                 ◄── ITEM ... (at most W ahead of the loop)
 *   each item the loop takes frees a place: every W/2 taken, CREDIT W/2 ──► server
 *   break / return()                              CANCEL ──► server (its ctx.signal aborts)
 *                                                 ◄── REPLY: done   ◄── ERROR: the loop throws it
 * ```
 * The client buffers at most W items (W × maxMessageSize bytes at most); a server that sends more
 * than it was granted is cut off with INTERNAL. Items received before the stream ended are
 * delivered before its end (done or the error). The call starts on the first `next()`, so a stream
 * that is never read opens nothing. Before its first item a stream is retried as a unary call is
 * (retry.ts); after it, never: the items already read would come again.
 */
import { RpcError } from '../errors.js'
import type { Metadata } from '../codec/envelope.js'
import type { CallInfo } from './contract.js'
import { ChannelCall, type Channel } from '../rpc/channel.js'
import { MAX_ATTEMPTS, retryPolicy, retryWaitsForReady } from '../rpc/retry.js'

/** What a stream needs from its client: where to send each attempt. */
export interface StreamRoute {
  /** The channel for an attempt, preferring one not in `tried`. */
  pick(tried: ReadonlySet<Channel>): Channel
  /** Whether a retry could go somewhere this stream has not tried (another endpoint, or a broker). */
  elsewhere(tried: ReadonlySet<Channel>): boolean
  closed(): boolean
}

/** The call as the reader starts it. */
export interface StreamRequest {
  readonly service: string
  readonly method: string
  readonly params: Uint8Array
  /** The stream's whole budget, counted from its first `next()`. */
  readonly timeoutMs: number
  readonly signal: AbortSignal | undefined
  readonly metadata: Metadata | undefined
  readonly waitForReady: boolean
  readonly idempotent: boolean
  readonly window: number
  /** The caller's CallInfo: the endpoint serving the stream, and attempts. */
  readonly info: CallInfo | undefined
}

/** Default window: items the server may send ahead of the reader. */
export const DEFAULT_STREAM_WINDOW = 16

/** One attempt of a stream on a channel; its events go to the reader. */
class StreamCall extends ChannelCall {
  constructor(
    readonly reader: StreamReader<unknown>,
    request: StreamRequest,
    deadline: number,
    waitForReady: boolean,
    readonly channel: Channel,
  ) {
    super(request.service, request.method, request.params, deadline, request.signal, request.metadata, waitForReady)
    this.window = request.window
    this.info = request.info
  }

  override item(payload: Uint8Array): void {
    this.reader.onItem(this, payload)
  }

  succeeded(): void {
    this.reader.onEnd(this, undefined)
  }

  failed(err: RpcError): void {
    this.reader.onEnd(this, err)
  }
}

/**
 * An open (or not yet opened) stream. `decode` turns an item's bytes into the caller's value, or
 * throws the RpcError the loop gets.
 */
export class StreamReader<T> implements AsyncIterableIterator<T> {
  private call: StreamCall | undefined
  private readonly tried = new Set<Channel>()
  private attempts = 0
  private readonly items: Uint8Array[] = []
  /** Items the server may still send without a new CREDIT. */
  private allowance: number
  /** Items taken by the loop since the last CREDIT. */
  private taken = 0
  private received = 0
  private end: { readonly err: RpcError | undefined } | undefined
  private done = false
  private waiter: { resolve(result: IteratorResult<T>): void; reject(err: unknown): void } | undefined
  private deadline = 0

  constructor(
    private readonly route: StreamRoute,
    private readonly request: StreamRequest,
    private readonly decode: (bytes: Uint8Array) => T,
  ) {
    this.allowance = request.window
  }

  [Symbol.asyncIterator](): this {
    return this
  }

  next(): Promise<IteratorResult<T>> {
    if (this.done) return Promise.resolve({ done: true, value: undefined })
    if (this.waiter !== undefined) return Promise.reject(new TypeError('next() called again before the previous next() settled'))
    if (this.attempts === 0) {
      this.deadline = Date.now() + this.request.timeoutMs
      this.open(this.request.waitForReady)
    }
    const ready = this.take()
    if (ready !== undefined) return ready
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }))
  }

  /** Leaving the loop: cancels the call at the server and drops what was buffered. */
  return(): Promise<IteratorResult<T>> {
    this.finish()
    return Promise.resolve({ done: true, value: undefined })
  }

  /** @internal An ITEM from attempt `call`. */
  onItem(call: StreamCall, payload: Uint8Array): void {
    if (call !== this.call || this.done) return
    if (this.allowance === 0) {
      return this.cancel(call, new RpcError('INTERNAL', `the server sent more items of ${this.request.service}.${this.request.method} than this client granted (window ${this.request.window})`))
    }
    this.allowance--
    this.received++
    // A received item pins its whole frame: keep a copy when it is a small part of it.
    this.items.push(payload.byteLength * 2 < payload.buffer.byteLength ? Uint8Array.prototype.slice.call(payload) : payload)
    this.wake()
  }

  /** @internal Attempt `call` ended: done (`err` undefined) or failed. */
  onEnd(call: StreamCall, err: RpcError | undefined): void {
    if (call !== this.call || this.done) return
    this.call = undefined
    if (err !== undefined && this.received === 0 && this.mayRetry(err)) return this.open(this.request.waitForReady || retryWaitsForReady(err))
    this.end = { err }
    this.wake()
  }

  private mayRetry(err: RpcError): boolean {
    const { signal, idempotent } = this.request
    return this.attempts < MAX_ATTEMPTS && this.deadline - Date.now() >= 1 && signal?.aborted !== true && !this.route.closed() && retryPolicy(err, idempotent, this.route.elsewhere(this.tried))
  }

  private open(waitForReady: boolean): void {
    this.attempts++
    const channel = this.route.pick(this.tried)
    this.tried.add(channel)
    const { info } = this.request
    if (info !== undefined) {
      info.endpoint = channel.endpoint
      info.attempts = this.attempts
    }
    this.call = new StreamCall(this as StreamReader<unknown>, this.request, this.deadline, waitForReady, channel)
    channel.call(this.call)
  }

  /** The next result if one is ready: an item, or the end once the items before it are read. */
  private take(): Promise<IteratorResult<T>> | undefined {
    const bytes = this.items.shift()
    if (bytes !== undefined) {
      this.credit()
      let value: T
      try {
        value = this.decode(bytes)
      } catch (err) {
        this.finish()
        return Promise.reject(err)
      }
      return Promise.resolve({ done: false, value })
    }
    if (this.end === undefined) return undefined
    const { err } = this.end
    this.finish()
    return err === undefined ? Promise.resolve({ done: true, value: undefined }) : Promise.reject(err)
  }

  /** The loop took an item: once half the window is taken, grant that much again. */
  private credit(): void {
    this.taken++
    const call = this.call
    if (call === undefined || this.taken * 2 < this.request.window) return
    this.allowance += this.taken
    call.channel.grant(call, this.taken)
    this.taken = 0
  }

  private wake(): void {
    const waiter = this.waiter
    if (waiter === undefined) return
    this.waiter = undefined
    const ready = this.take()
    if (ready === undefined) this.waiter = waiter
    else ready.then(waiter.resolve, waiter.reject)
  }

  /** Ends the attempt in flight with `err` (the server broke the stream's rules): the loop gets it after the items it has. */
  private cancel(call: StreamCall, err: RpcError): void {
    this.call = undefined
    call.channel.cancel(call)
    this.end = { err }
    this.wake()
  }

  /** Stops for good: cancels the attempt in flight, drops buffered items, ends a waiting next(). */
  private finish(): void {
    if (this.done) return
    this.done = true
    this.items.length = 0
    const call = this.call
    this.call = undefined
    if (call !== undefined) call.channel.cancel(call)
    const waiter = this.waiter
    this.waiter = undefined
    waiter?.resolve({ done: true, value: undefined })
  }
}

/** A stream that fails on its first `next()`: bad params or options, found before anything was sent. */
export function failedStream<T>(err: unknown): AsyncIterableIterator<T> {
  let done = false
  return {
    [Symbol.asyncIterator]() {
      return this
    },
    next: () => {
      if (done) return Promise.resolve({ done: true, value: undefined })
      done = true
      return Promise.reject(err)
    },
    return: () => {
      done = true
      return Promise.resolve({ done: true, value: undefined })
    },
  }
}
