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
import type { RpcError } from '../errors.js'
import type { Metadata } from '../codec/envelope.js'
import type { ReplyTarget } from './channel-replies.js'

/** A call on its way through one channel; subclasses decide what its outcome means. */
export abstract class ChannelCall implements ReplyTarget {
  /** Its id on the channel it was last given to. */
  id = 0
  /** Written to the socket; false while the call waits for a connection. */
  sent = false
  /** The budget left when the channel took it, for the message if it runs out (ms). */
  budget = 0
  /** The listener on the caller's signal, only when a signal was given. */
  onAbort: (() => void) | undefined = undefined
  /** Set by the channel while the call is in its table. */
  ender: { end(call: ChannelCall): void } | undefined = undefined

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

  /** Ends the call with its result (called by the channel's receive side). */
  resolve(result: Uint8Array): void {
    this.ender?.end(this)
    this.succeeded(result)
  }

  /** Ends the call with an error. */
  reject(err: RpcError): void {
    this.ender?.end(this)
    this.failed(err)
  }
}
