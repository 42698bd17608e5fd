/**
 * Request-reply with the Lazy Pirate client (ZeroMQ guide, chapter 4).
 *
 * ```
 *   LazyPirateClient (REQ)                    ReplyServer (REP) or any REP peer
 *   request(frames) ──[f0 .. fN]────────────▶ handler(frames)
 *                   ◀──[r0 .. rN]──────────── reply
 *
 *   no reply within timeoutMs:
 *     close the REQ (it is stuck waiting for a reply: a second send would hang or fail EFSM),
 *     open a new REQ, connect, send the same frames again; give up after `retries` sends.
 * ```
 *
 * Frames are opaque bytes; REQ/REP add and strip the empty delimiter frame themselves.
 * Resending needs idempotent requests: a slow server may run the same request twice.
 *
 * Copy this file: it imports only `zeromq` and Node built-ins. Run the example with
 * `node dist/patterns/reqrep.js`.
 */
import { Reply, Request } from 'zeromq'
import { setTimeout as sleep } from 'node:timers/promises'
import { pathToFileURL } from 'node:url'

// Tuning: the guide's values (mdcli/lpclient). Lower them on a LAN; keep them above the server's
// worst honest response time or every slow reply becomes a resend.
const REQUEST_TIMEOUT_MS = 2500
const REQUEST_RETRIES = 3
const RECONNECT_INTERVAL_MS = 100
const REBIND_ATTEMPTS = 50
const REBIND_PAUSE_MS = 20

type Log = (line: string) => void
const silent: Log = () => {}
const toConsole: Log = (line) => console.log(line)

/** What a {@link ReplyServer} calls for each request: frames in, reply frames out. */
export type ReplyHandler = (frames: Buffer[]) => Buffer[] | Promise<Buffer[]>

/** Options for {@link ReplyServer}. */
export interface ReplyServerOptions {
  /** Print `I:`/`W:`/`E:` lines to the console (default false). */
  log?: boolean
}

/**
 * A REP server that calls one handler per request and sends back what it returns.
 *
 * Why: REP is lock-step (receive, then exactly one send), so the loop must always answer, even when
 * the handler throws; this helper keeps it in step. A handler that throws gets an empty one-frame
 * reply; put errors in your own frames if the client must tell them apart.
 *
 * @example
 * const server = new ReplyServer((frames) => frames) // echo
 * const endpoint = await server.bind('tcp://127.0.0.1:*')
 * // ...
 * await server.close()
 */
export class ReplyServer {
  readonly #socket = new Reply({ linger: 0 })
  readonly #handler: ReplyHandler
  readonly #log: Log
  #loop: Promise<void> | undefined
  #closed = false

  constructor(handler: ReplyHandler, options: ReplyServerOptions = {}) {
    this.#handler = handler
    this.#log = options.log === true ? toConsole : silent
  }

  /** Binds (more than once for several endpoints) and starts serving; returns the bound endpoint. */
  async bind(endpoint: string): Promise<string> {
    await this.#socket.bind(endpoint)
    const bound = this.#socket.lastEndpoint ?? endpoint
    this.#log(`I: serving on ${bound}`)
    this.#loop ??= this.#serve()
    return bound
  }

  /** Stops serving. Resolves once the loop has ended (after a handler still running returns). */
  async close(): Promise<void> {
    this.#closed = true
    this.#socket.close()
    await this.#loop
  }

  async #serve(): Promise<void> {
    try {
      for await (const request of this.#socket) {
        let reply: Buffer[]
        try {
          reply = await this.#handler(request)
        } catch (err) {
          this.#log(`E: handler failed, sending an empty reply: ${String(err)}`)
          reply = []
        }
        await this.#socket.send(reply.length > 0 ? reply : [Buffer.alloc(0)])
      }
    } catch (err) {
      // Closed while the handler ran: the reply has nowhere to go, as after a crash.
      if (!this.#closed) this.#log(`E: server stopped: ${String(err)}`)
    }
  }
}

/** Why a {@link LazyPirateClient} request failed. */
export type LazyPirateErrorCode = 'RETRIES_EXHAUSTED' | 'CLOSED'

/**
 * The error a {@link LazyPirateClient} request rejects with.
 *
 * Why: callers branch on `code` (give up, or the client was closed) rather than on message text.
 *
 * @example
 * try { await client.request(frames) } catch (err) {
 *   if (err instanceof LazyPirateError && err.code === 'RETRIES_EXHAUSTED') markServerDown(err.endpoint)
 * }
 */
export class LazyPirateError extends Error {
  override readonly name = 'LazyPirateError'

  constructor(
    readonly code: LazyPirateErrorCode,
    readonly endpoint: string,
    /** Sends made for this request, the last one included. */
    readonly tries: number,
    message: string,
  ) {
    super(message)
  }
}

/** Options for {@link LazyPirateClient}. */
export interface LazyPirateOptions {
  /** The server endpoint to connect to, e.g. `tcp://127.0.0.1:5555`. */
  endpoint: string
  /** How long one send waits for its reply before the socket is replaced (default 2500). */
  timeoutMs?: number
  /**
   * How many times a request is sent in all before giving up (default 3), as the guide's
   * REQUEST_RETRIES: 3 means the first send and two resends.
   */
  retries?: number
  /** Print `I:`/`W:`/`E:` lines to the console (default false). */
  log?: boolean
}

/** Counters of a {@link LazyPirateClient}, since it was made. */
export interface LazyPirateStats {
  requests: number
  replies: number
  /** Resends after a timeout (not counting first sends). */
  retries: number
  /** Requests that ended with RETRIES_EXHAUSTED. */
  failures: number
}

interface Job {
  frames: Buffer[]
  resolve: (reply: Buffer[]) => void
  reject: (err: unknown) => void
}

/**
 * A REQ client that survives a dead, slow or restarted server: per-send timeout, bounded resends,
 * and a fresh REQ socket after every timeout.
 *
 * Why: a REQ that sent and got no reply cannot send again (zeromq.js waits forever for the socket
 * to become writable, or fails EFSM with a sendTimeout); the only way out is to close it.
 * Concurrent `request()` calls wait their turn in a FIFO, because REQ is lock-step and zeromq.js
 * throws EBUSY on a second pending send or receive.
 *
 * @example
 * const client = new LazyPirateClient({ endpoint: 'tcp://127.0.0.1:5555', timeoutMs: 1000 })
 * const [reply] = await client.request([Buffer.from('hello')])
 * await client.close()
 */
export class LazyPirateClient {
  readonly endpoint: string
  readonly stats: LazyPirateStats = { requests: 0, replies: 0, retries: 0, failures: 0 }
  readonly #timeoutMs: number
  readonly #retries: number
  readonly #log: Log
  readonly #queue: Job[] = []
  #socket: Request | undefined
  #pump: Promise<void> | undefined
  #closed = false

  constructor(options: LazyPirateOptions) {
    this.endpoint = options.endpoint
    this.#timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS
    this.#retries = Math.max(1, options.retries ?? REQUEST_RETRIES)
    this.#log = options.log === true ? toConsole : silent
  }

  /** Sends `frames` and resolves with the reply frames; rejects with {@link LazyPirateError}. */
  request(frames: Buffer[]): Promise<Buffer[]> {
    if (this.#closed) return Promise.reject(this.#closedError(0))
    return new Promise<Buffer[]>((resolve, reject) => {
      this.#queue.push({ frames, resolve, reject })
      this.#pump ??= this.#drain()
    })
  }

  /** Closes the socket; the request in flight and all waiting ones reject with code `CLOSED`. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const job of this.#queue.splice(0)) job.reject(this.#closedError(0))
    this.#discard()
    await this.#pump
  }

  async #drain(): Promise<void> {
    for (let job = this.#queue.shift(); job !== undefined; job = this.#queue.shift()) {
      try {
        job.resolve(await this.#call(job.frames))
      } catch (err) {
        job.reject(err)
      }
    }
    this.#pump = undefined
  }

  async #call(frames: Buffer[]): Promise<Buffer[]> {
    this.stats.requests++
    for (let attempt = 1; attempt <= this.#retries; attempt++) {
      if (attempt > 1) {
        this.stats.retries++
        this.#log(`W: no reply from ${this.endpoint}, resending (try ${attempt}/${this.#retries})`)
      }
      const socket = this.#open()
      let timedOut = false
      // One deadline for send and receive; closing the socket is both the cancel and the
      // Lazy Pirate reset (a pending receive rejects with EAGAIN, the same code as receiveTimeout,
      // so the flags, not the error, say what happened).
      const timer = setTimeout(() => {
        timedOut = true
        this.#discard()
      }, this.#timeoutMs)
      try {
        await socket.send(frames)
        const reply = await socket.receive()
        this.stats.replies++
        return reply
      } catch (err) {
        if (this.#closed) throw this.#closedError(attempt)
        if (!timedOut) {
          this.#discard()
          throw err
        }
      } finally {
        clearTimeout(timer)
      }
    }
    this.stats.failures++
    this.#log(`E: ${this.endpoint} did not answer ${this.#retries} tries, abandoning`)
    throw new LazyPirateError(
      'RETRIES_EXHAUSTED',
      this.endpoint,
      this.#retries,
      `no reply from ${this.endpoint} after ${this.#retries} tries of ${this.#timeoutMs} ms`,
    )
  }

  #open(): Request {
    if (this.#socket === undefined) {
      this.#socket = new Request({ linger: 0, reconnectInterval: RECONNECT_INTERVAL_MS })
      this.#socket.connect(this.endpoint)
    }
    return this.#socket
  }

  #discard(): void {
    this.#socket?.close()
    this.#socket = undefined
  }

  #closedError(tries: number): LazyPirateError {
    return new LazyPirateError('CLOSED', this.endpoint, tries, `client for ${this.endpoint} closed after ${tries} tries`)
  }
}

/** Options for the in-process example {@link main}. */
export interface ReqRepMainOptions {
  /** Requests the client sends, one after the other (default 10). */
  requests?: number
  /** Client per-send timeout (default 2500). */
  timeoutMs?: number
  /** Client sends per request (default 3). */
  retries?: number
  /** The server ignores every n-th request it receives, as if overloaded (default 4, 0 = never). */
  dropEvery?: number
  /** The server dies on its n-th received request and restarts (default 6, 0 = never). */
  crashAt?: number
  /** How long the server stays dead (default half the timeout). */
  restartDelayMs?: number
  /** Where the server binds (default `tcp://127.0.0.1:*`; must survive a rebind, so not inproc). */
  endpoint?: string
  log?: boolean
}

/** What {@link main} observed. */
export interface ReqRepSummary {
  requests: number
  ok: number
  retries: number
  failures: number
  dropped: number
  restarts: number
}

/**
 * The guide's lpclient/lpserver in one process: a server that drops some requests and dies once,
 * a Lazy Pirate client that resends. Resolves with what happened.
 *
 * Why: a runnable, testable demonstration that the client recovers from both failure kinds.
 *
 * @example
 * const summary = await main({ requests: 5, timeoutMs: 200 })
 * // summary.ok === 5 when every request got through within its tries
 */
export async function main(options: ReqRepMainOptions = {}): Promise<ReqRepSummary> {
  const log = options.log === true ? toConsole : silent
  const requests = options.requests ?? 10
  const timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS
  const dropEvery = options.dropEvery ?? 4
  const crashAt = options.crashAt ?? 6
  const restartDelayMs = options.restartDelayMs ?? Math.round(timeoutMs / 2)
  const sleeping = new AbortController()
  const summary: ReqRepSummary = { requests, ok: 0, retries: 0, failures: 0, dropped: 0, restarts: 0 }
  let received = 0
  let restarting: Promise<void> | undefined

  const handler: ReplyHandler = async (frames) => {
    received++
    if (crashAt > 0 && received === crashAt) {
      log(`W: simulating a crash on request ${received}`)
      restarting = restart().catch((err: unknown) => log(`E: restart failed: ${String(err)}`))
    } else if (dropEvery > 0 && received % dropEvery === 0) {
      // Overload: answer after the client gave up on this socket, so the reply is lost.
      log(`W: simulating overload on request ${received}`)
      summary.dropped++
      await sleep(timeoutMs * 1.5, undefined, { signal: sleeping.signal }).catch(() => undefined)
    }
    return frames
  }
  let server = new ReplyServer(handler, { log: options.log === true })
  const endpoint = await server.bind(options.endpoint ?? 'tcp://127.0.0.1:*')

  async function restart(): Promise<void> {
    await server.close()
    summary.restarts++
    await sleep(restartDelayMs)
    server = await bindWithRetry(handler, endpoint, options.log === true)
    log(`I: server restarted on ${endpoint}`)
  }

  const clientOptions: LazyPirateOptions = { endpoint, timeoutMs, log: options.log === true }
  if (options.retries !== undefined) clientOptions.retries = options.retries
  const client = new LazyPirateClient(clientOptions)
  try {
    for (let i = 1; i <= requests; i++) {
      const body = Buffer.from(String(i))
      try {
        const [reply] = await client.request([body])
        if (reply?.equals(body) === true) {
          summary.ok++
          log(`I: server replied OK (${i})`)
        } else {
          summary.failures++
          log(`E: malformed reply to ${i}: ${String(reply)}`)
        }
      } catch (err) {
        summary.failures++
        log(`E: request ${i} failed: ${String(err)}`)
      }
    }
  } finally {
    summary.retries = client.stats.retries
    sleeping.abort()
    await client.close()
    await restarting
    await server.close()
  }
  return summary
}

// A restarted server binds the port its predecessor just released; libzmq frees it asynchronously.
async function bindWithRetry(handler: ReplyHandler, endpoint: string, log: boolean): Promise<ReplyServer> {
  for (let attempt = 1; ; attempt++) {
    const server = new ReplyServer(handler, { log })
    try {
      await server.bind(endpoint)
      return server
    } catch (err) {
      await server.close()
      if ((err as { code?: unknown }).code !== 'EADDRINUSE' || attempt >= REBIND_ATTEMPTS) throw err
      await sleep(REBIND_PAUSE_MS)
    }
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  void main({ log: true }).then(
    (summary) => console.log(`I: done ${JSON.stringify(summary)}`),
    (err: unknown) => {
      console.error(`E: ${String(err)}`)
      process.exitCode = 1
    },
  )
}
