/**
 * A listener: one ROUTER socket bound to one or more endpoints, feeding a Dispatcher.
 *
 * ```
 *   ROUTER  <-  [ routing id ][ frame: CBOR sequence of REQUEST / CANCEL envelopes ]
 *           ->  [ routing id ][ frame: CBOR sequence of REPLY / ERROR envelopes ]
 * ```
 * Input from the network is untrusted: anything that cannot be read is answered with an error when
 * its id can be read, otherwise dropped and counted; the loop never stops for bad input.
 */
import { Router } from 'zeromq'
import { DEFAULT_CBOR_LIMITS, type CborLimits } from '../codec/cbor.js'
import { Kind, encodeError, parseFrame } from '../codec/envelope.js'
import { SendQueue } from '../transport/send-queue.js'
import type { Dispatcher } from './dispatcher.js'

export interface ListenerOptions {
  readonly maxMessageSize: number
  readonly coalesce: boolean
}

/** Input the listener could not serve, by reason. */
export interface ListenerStats {
  /** Messages with other than [routing id, frame]. */
  badFrameCount: number
  /** Frames or envelopes that were not readable zrpc, answered when an id was known. */
  malformed: number
  /** Replies or errors sent to a server (they belong to clients). */
  unexpectedKind: number
  /** Outgoing frames over maxMessageSize, replaced by RESOURCE_EXHAUSTED. */
  oversizedReplies: number
}

export class Listener {
  private readonly socket: Router
  private readonly queue: SendQueue
  private readonly limits: CborLimits
  private closed = false
  private loop: Promise<void> | undefined
  readonly stats: ListenerStats = { badFrameCount: 0, malformed: 0, unexpectedKind: 0, oversizedReplies: 0 }

  constructor(
    private readonly dispatcher: Dispatcher,
    private readonly options: ListenerOptions,
  ) {
    this.socket = new Router({
      linger: 200,
      maxMessageSize: options.maxMessageSize,
      sendHighWaterMark: 100_000,
      receiveHighWaterMark: 100_000,
    })
    this.limits = { ...DEFAULT_CBOR_LIMITS, maxBytes: options.maxMessageSize }
    this.queue = new SendQueue(this.socket, { coalesce: options.coalesce, maxFrameBytes: Math.min(256 * 1024, options.maxMessageSize) })
  }

  /** Binds one more endpoint and returns it resolved (`tcp://127.0.0.1:*` becomes a real port). */
  async bind(endpoint: string): Promise<string> {
    await this.socket.bind(endpoint)
    this.loop ??= this.receiveLoop()
    return this.socket.lastEndpoint ?? endpoint
  }

  /** Waits for queued replies to be handed to the socket, then closes it. */
  async close(): Promise<void> {
    if (this.closed) return
    await this.queue.idle()
    this.closed = true
    this.socket.close()
    await this.loop
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const message of this.socket) {
        const [from, frame] = message
        if (message.length !== 2 || from === undefined || frame === undefined) {
          this.stats.badFrameCount++
          continue
        }
        await this.onFrame(from, frame)
      }
    } catch (err) {
      if (!this.closed && !this.socket.closed) throw err
    }
  }

  private async onFrame(from: Buffer, frame: Buffer): Promise<void> {
    const peer = from.toString('latin1')
    const reply = (out: Buffer, id: number): void => {
      if (out.length > this.options.maxMessageSize) {
        this.stats.oversizedReplies++
        out = encodeError(id, 'RESOURCE_EXHAUSTED', `reply of ${out.length} bytes exceeds maxMessageSize ${this.options.maxMessageSize}`)
      }
      this.queue.push(out, from)
    }
    for (const env of parseFrame(frame, this.limits)) {
      switch (env.kind) {
        case 'malformed':
          this.stats.malformed++
          if (env.id !== undefined) this.queue.push(encodeError(env.id, env.code, env.reason), from)
          break
        case Kind.Request:
          // A coalesced frame can hold thousands of calls. When every handler slot is taken, let the
          // running ones finish before taking the next, instead of overflowing the queue at once.
          if (this.dispatcher.saturated) await yieldToEventLoop()
          this.dispatcher.handle(env, peer, reply)
          break
        case Kind.Cancel:
          this.dispatcher.cancel(peer, env.id)
          break
        case Kind.Reply:
        case Kind.Error:
          this.stats.unexpectedKind++
          break
      }
    }
  }
}

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
