/**
 * Majordomo client (RFC 7 MDP/0.1): a synchronous Lazy-Pirate `request()` over REQ, and a
 * pipelining `send()`/`receive()` over DEALER (the guide's mdcliapi and mdcliapi2).
 *
 * ```
 *  REQ:     MDPC01 <service> <body..>  ──►  broker  (REQ adds the empty frame)
 *           MDPC01 <service> <body..>  ◄──
 *  DEALER:  [] MDPC01 <service> <body..> ──►  broker
 *           [] MDPC01 <service> <body..> ◄──
 * ```
 * `request()` waits `timeoutMs` for a reply; on silence it closes the REQ socket (the only way out of
 * REQ's lock-step), opens a new one and sends the same request again, `retries` tries in all, then
 * resolves `null`. So workers should be idempotent. The DEALER mode does not retry.
 */
import { Dealer, Request } from 'zeromq'
import { MDPC01, SendQueue, clientFrames, isHeader, parseClientMessage, toFrames } from './majordomo-protocol.js'
import type { Frames, LogFn } from './majordomo-protocol.js'

/** Reference defaults: reply timeout and tries in all. */
const REQUEST_TIMEOUT_MS = 2500
const REQUEST_RETRIES = 3

export interface ClientOptions {
  /** How long to wait for a reply, ms (default 2500). */
  timeoutMs?: number
  /** Tries in all for `request()` (default 3). */
  retries?: number
  /** Log lines (`I:`/`W:`/`E:`); off by default. */
  log?: LogFn
}

/** A reply from the DEALER mode: which service answered and the body. */
export interface MajordomoReply {
  service: string
  body: Buffer[]
}

/**
 * A Majordomo client.
 *
 * Why: the reference client behaviour (timeout, new socket, resend) in one call, and a pipelined
 * mode for throughput.
 *
 * @example
 * const client = new MajordomoClient('tcp://127.0.0.1:5555')
 * const reply = await client.request('echo', 'hello')   // Buffer[] or null after 3 silent tries
 * await client.send('echo', 'a'); const r = await client.receive()  // { service, body } or null
 * client.close()
 */
export class MajordomoClient {
  private req: Request | undefined
  private dealer: Dealer | undefined
  private dealerOut: SendQueue | undefined
  private requestChain: Promise<unknown> = Promise.resolve()
  private receiveChain: Promise<unknown> = Promise.resolve()
  private closed = false
  private readonly timeoutMs: number
  private readonly retries: number

  constructor(
    readonly endpoint: string,
    private readonly opts: ClientOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? REQUEST_TIMEOUT_MS
    this.retries = opts.retries ?? REQUEST_RETRIES
  }

  /**
   * Sends a request and waits for its reply body. Resolves `null` when every try timed out (or the
   * client was closed). Concurrent calls are served one after another.
   */
  request(service: string, body: Frames): Promise<Buffer[] | null> {
    const run = () => this.requestWithRetries(service, toFrames(body))
    const result = this.requestChain.then(run, run)
    this.requestChain = result.catch(() => undefined)
    return result
  }

  /** DEALER mode: queues a request without waiting for the reply. */
  async send(service: string, body: Frames): Promise<void> {
    if (this.closed) throw new Error('MajordomoClient is closed')
    if (!this.dealer || !this.dealerOut) {
      this.dealer = new Dealer({ linger: 0, receiveTimeout: this.timeoutMs })
      this.dealer.connect(this.endpoint)
      this.dealerOut = new SendQueue(this.dealer)
    }
    await this.dealerOut.push(clientFrames(service, toFrames(body)))
  }

  /** DEALER mode: the next reply, or `null` after `timeoutMs` of silence or once closed. */
  receive(): Promise<MajordomoReply | null> {
    const run = () => this.receiveOne()
    const result = this.receiveChain.then(run, run)
    this.receiveChain = result.catch(() => undefined)
    return result
  }

  /** Closes both sockets; pending calls resolve `null`. */
  close(): void {
    this.closed = true
    this.req?.close()
    this.dealer?.close()
  }

  private async requestWithRetries(service: string, body: Buffer[]): Promise<Buffer[] | null> {
    for (let attempt = 1; attempt <= this.retries && !this.closed; attempt++) {
      if (!this.req) {
        this.req = new Request({ linger: 0, receiveTimeout: this.timeoutMs, sendTimeout: this.timeoutMs })
        this.req.connect(this.endpoint)
      }
      const socket = this.req
      try {
        await socket.send([MDPC01, service, ...body])
        const [header, replyService, ...replyBody] = await socket.receive()
        if (isHeader(header, MDPC01) && replyService?.toString() === service) return replyBody
        this.opts.log?.(`W: malformed reply for ${service}`)
      } catch (err) {
        if (this.closed) return null
        this.opts.log?.(`W: no reply from ${service} (${(err as { code?: string }).code ?? String(err)}), try ${attempt}/${this.retries}`)
      }
      socket.close()
      this.req = undefined
    }
    if (!this.closed) this.opts.log?.(`E: ${service}: no reply after ${this.retries} tries, abandoning`)
    return null
  }

  private async receiveOne(): Promise<MajordomoReply | null> {
    const socket = this.dealer
    if (!socket || this.closed) return null
    for (;;) {
      let frames: Buffer[]
      try {
        frames = await socket.receive()
      } catch {
        return null
      }
      const msg = parseClientMessage(frames)
      if (!('invalid' in msg)) return msg
      this.opts.log?.(`W: dropped malformed reply (${msg.invalid})`)
    }
  }
}
