/**
 * One attempt of a call as a channel keeps it: what to send, and where its outcome goes.
 *
 * The caller (the client) makes one object per call and says in {@link ChannelCall.succeeded} and
 * {@link ChannelCall.failed} what an outcome means to it (settle its promise, or retry), so the
 * channel needs no promise, closure or table entry of its own beyond this object:
 * ```
 *   client  --new ClientCall(...)-->  channel.call(call)  --pending[id], wheel-->  reply
 *   client  <--call.succeeded(bytes) / call.failed(err)--  channel (after taking it out of both)
 * ```
 */
import { RpcError } from '../errors.js'
import { writeRequest, type Metadata } from '../codec/envelope.js'
import type { LazyBody } from '../transport/send-queue.js'
import type { ReplyTarget } from './channel-replies.js'

/**
 * A call on its way through one channel; subclasses decide what its outcome means. Without metadata
 * it is also its own REQUEST envelope, written straight into the frame that carries it (LazyBody).
 */
export abstract class ChannelCall implements ReplyTarget, LazyBody {
  /** Its id on the channel it was last given to. */
  id = 0
  /** Written to the socket; false while the call waits for a connection. */
  sent = false
  /** The budget left when the channel took it, for the message if it runs out (ms). */
  budget = 0
  /** `performance.now()` when the channel took it. */
  sentAt = 0
  /** The listener on the caller's signal, only when a signal was given. */
  onAbort: (() => void) | undefined = undefined
  /** Set by the channel while the call is in its table. */
  ender: { readonly endpoint: string; end(call: ChannelCall): void } | undefined = undefined
  /** The REQUEST as the channel wrote it: budget in it, UTF-8 lengths of the names, its size. */
  timeoutMs = 0
  serviceBytes = 0
  methodBytes = 0
  byteLength = 0
  /** Set for a stream: the window its REQUEST grants the server (ITEMs before a CREDIT). */
  window: number | undefined = undefined
  /** Set for a call a server may answer from its record: the same in every attempt (REQUEST item 9). */
  key: Uint8Array | undefined = undefined
  /** The caller's CallInfo, told which endpoint answered. */
  info: { endpoint?: string } | undefined = undefined

  constructor(
    readonly service: string,
    readonly method: string,
    readonly params: Uint8Array,
    /** Absolute deadline, in ms since the epoch. */
    readonly deadline: number,
    readonly signal: AbortSignal | undefined,
    readonly metadata: Metadata | undefined,
    /** Wait for a connection up to the deadline, instead of failing fast while the endpoint cannot be reached. */
    public waitForReady: boolean,
  ) {}

  /** The call's reply arrived: the channel has let go of it. */
  abstract succeeded(result: Uint8Array): void
  /** The call ended without a reply (error, deadline, signal, lost connection, close): the channel has let go of it. */
  abstract failed(err: RpcError): void

  /** An ITEM for this call; a unary call cannot take one: the server and this client disagree on the contract. */
  item(_payload: Uint8Array): void {
    this.reject(new RpcError('INTERNAL', `the server sent stream items for ${this.service}.${this.method}, which this client's contract says is unary`))
  }

  /** Writes the REQUEST envelope (no metadata) the channel sized in `byteLength`. */
  writeTo(out: Buffer, pos: number): number {
    return writeRequest(out, pos, this.id, this.service, this.serviceBytes, this.method, this.methodBytes, this.timeoutMs, this.params, this.window, this.key)
  }

  /** Ends the call with its result (called by the channel's receive side). */
  resolve(result: Uint8Array): void {
    const ender = this.ender
    if (ender !== undefined) {
      if (this.info !== undefined) this.info.endpoint = ender.endpoint
      ender.end(this)
    }
    this.succeeded(result)
  }

  /** Ends the call with an error, which learns the endpoint it concerns. */
  reject(err: RpcError): void {
    const ender = this.ender
    if (ender !== undefined) {
      err.endpoint ??= ender.endpoint
      ender.end(this)
    }
    this.failed(err)
  }
}
