/**
 * RpcClient: calls typed services on one or more servers.
 *
 * @example
 * const client = new RpcClient({ connect: 'tcp://127.0.0.1:5555' })
 * const calc = client.service(Calc)
 * const sum = await calc.add({ a: 1, b: 2 })
 *
 * // or through a Majordomo broker:
 * const viaBroker = new RpcClient({ broker: 'tcp://127.0.0.1:5555' }).service(Calc)
 */
import { randomBytes } from 'node:crypto'
import { RpcError } from '../errors.js'
import { DEFAULT_CBOR_LIMITS, decodeCbor, encodeCbor, type CborLimits } from '../codec/cbor.js'
import { MAX_ID, MAX_STREAM_CREDIT, type Metadata } from '../codec/envelope.js'
import { checkEndpoint } from '../transport/endpoint.js'
import type { CurveOptions } from '../transport/curve.js'
import { SocketSecurity } from '../transport/security.js'
import { Channel, ChannelCall, HEARTBEAT_DEFAULTS, type ChannelStats, type HeartbeatOptions } from '../rpc/channel.js'
import { mdpFraming } from '../rpc/framing.js'
import { BALANCERS, type BalancerName, type LoadBalancer } from '../rpc/balancer.js'
import { MAX_ATTEMPTS, connectionWasLost, retryPolicy, retryWaitsForReady } from '../rpc/retry.js'
import type { CallOptions, ServiceClient, ServiceDefinition, StreamOptions } from './contract.js'
import { DEFAULT_STREAM_WINDOW, StreamReader, failedStream, type StreamRoute } from './client-stream.js'
import { validatorsFor } from './validator.js'
import { queueClient, type QueueClient } from './client-queue.js'
import { BrokerQueue } from './queue-contract.js'
import { DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_TIMEOUT_MS } from '../rpc/limits.js'

/** Where an {@link RpcClient} sends its calls: to servers directly, or through a broker. */
export type RpcClientTarget =
  | {
      /**
       * A server endpoint, or several: each call goes to a connected one, picked by `balancer`.
       * Endpoints can be added and removed later ({@link RpcClient.addEndpoint}, {@link RpcClient.removeEndpoint}).
       */
      readonly connect: string | readonly string[]
      readonly broker?: never
    }
  | {
      /**
       * A Majordomo broker's endpoint. Calls go to whichever worker the broker picks; cancelling a call
       * reaches the worker's handler through a zrpc broker (through another broker it ends the call
       * here only, and the worker's signal aborts at the deadline; streams need a zrpc broker).
       * Idempotent methods are retried within their deadline when the broker reports their worker lost.
       */
      readonly broker: string
      readonly connect?: never
    }

export type RpcClientOptions = RpcClientTarget & RpcClientSettings

export interface RpcClientSettings {
  /** Default time budget of every call in ms (default 30 000, at most 2^53-1). Every call has a deadline. */
  readonly timeoutMs?: number
  /** Largest message sent or accepted, in bytes (default 4 MiB, at least 64 KiB: the protocol's cap on joined frames). */
  readonly maxMessageSize?: number
  /** Join calls that wait behind a send into one frame (default true). */
  readonly coalesce?: boolean
  /** Check params against their schema before sending (default true): INVALID_ARGUMENT locally. */
  readonly validateParams?: boolean
  /**
   * Check results against their schema on arrival (default true: the contract is the trust boundary,
   * so a server that breaks it gets INTERNAL rather than a wrongly typed value to the caller).
   */
  readonly validateResults?: boolean
  /** Let calls wait for a connection until their deadline instead of failing fast (default false); per call too. */
  readonly waitForReady?: boolean
  /**
   * How calls spread over several endpoints (default `'power-of-two'`: two at random, the one with
   * less (calls in flight + 1) × answer time; `'least-outstanding'`; `'round-robin'`; or your own
   * {@link LoadBalancer}). Only connected endpoints are offered while there are any.
   */
  readonly balancer?: LoadBalancer | BalancerName
  /**
   * Heartbeats to servers connected directly (docs/protocol.md, Heartbeats): with calls in flight and
   * nothing heard from a server for `intervalMs` (default 1000) the client sends PING; after
   * `timeoutMs` (default 2000, or twice `intervalMs` when that is more) the server is marked down even though TCP is up: its calls fail at once
   * with UNAVAILABLE `{ connectionLost: true }` (idempotent ones are retried elsewhere), it gets no new
   * calls, and it is pinged with a growing delay until it answers. `false`: none. Not through a broker.
   */
  readonly heartbeat?: false | { readonly intervalMs?: number; readonly timeoutMs?: number }
  /**
   * CURVE (docs/security.md): `{ serverKey, publicKey, secretKey }`, Z85 keys; `serverKey` is the
   * server's (or the broker's) public key. A server that refuses this client's key, or that does not
   * use CURVE, makes calls fail at once with UNAUTHENTICATED.
   */
  readonly curve?: CurveOptions
}

/** The protocol-wide cap on joined frames; every maxMessageSize must hold one (docs/protocol.md). */
const MIN_MAX_MESSAGE_SIZE = 64 * 1024

export class RpcClient {
  private channels: Channel[]
  /** Removed endpoints whose calls are still finishing; close() ends them too. */
  private readonly draining = new Set<Channel>()
  private readonly limits: CborLimits
  private readonly timeoutMs: number
  private readonly balancer: LoadBalancer
  private readonly newChannel: (endpoint: string) => Channel
  private lastId = 0
  private closed = false
  /** Call keys: this client's random 8 bytes, then a count (docs/protocol.md, "Retries and the call record"). */
  private readonly keyPrefix = randomBytes(8)
  private lastKey = 0

  constructor(private readonly options: RpcClientOptions) {
    const endpoints = options.broker !== undefined ? [options.broker] : typeof options.connect === 'string' ? [options.connect] : [...(options.connect ?? [])]
    if (endpoints.length === 0) throw new TypeError('RpcClient needs at least one endpoint to connect to')
    // Every argument is checked before the first socket exists: a throw here leaves nothing open.
    for (const endpoint of endpoints) checkEndpoint(endpoint, 'connect')
    const curveSecurity = SocketSecurity.for(options.curve, 'RpcClient', 'connect')
    const security = curveSecurity.socketOptions
    const auth = curveSecurity.authEnvelope()
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
    checkTimeout(this.timeoutMs)
    const maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE
    if (!(Number.isSafeInteger(maxMessageSize) && maxMessageSize >= MIN_MAX_MESSAGE_SIZE)) {
      throw new TypeError(`maxMessageSize must be an integer of at least ${MIN_MAX_MESSAGE_SIZE} bytes (64 KiB), got ${String(maxMessageSize)}`)
    }
    this.limits = { ...DEFAULT_CBOR_LIMITS, maxBytes: maxMessageSize }
    // Ids wrap within 32 bits: compact on the wire, and far more than the calls one client has in flight.
    const nextId = (): number => (this.lastId = this.lastId >= 0xffffffff ? 1 : this.lastId + 1)
    const balancer = options.balancer ?? 'power-of-two'
    if (typeof balancer === 'string' && !(balancer in BALANCERS)) throw new TypeError(`unknown balancer ${JSON.stringify(balancer)}; known: ${Object.keys(BALANCERS).join(', ')}`)
    this.balancer = typeof balancer === 'string' ? BALANCERS[balancer]() : balancer
    const heartbeat = heartbeatOptions(options.heartbeat)
    this.newChannel = (endpoint) =>
      new Channel(endpoint, nextId, {
        maxMessageSize,
        coalesce: options.coalesce ?? true,
        heartbeat: options.broker !== undefined ? false : heartbeat,
        security,
        ...(auth !== undefined && { auth }),
        // A fixed routing id ('z' and 16 random hex digits; libzmq forbids a leading zero byte), so a durable broker knows this client after a reconnect.
        ...(options.broker !== undefined && { framing: mdpFraming(), routingId: `z${this.keyPrefix.toString('hex')}` }),
      })
    this.channels = endpoints.map(this.newChannel)
  }

  /** The endpoints calls go to now, in the order they were given. */
  get endpoints(): string[] {
    return this.channels.map((c) => c.endpoint)
  }

  /** Connects to one more server; calls start going there as soon as it is connected. Not for a broker client. */
  addEndpoint(endpoint: string): void {
    if (this.closed) throw new RpcError('CANCELLED', 'client is closed')
    if (this.options.broker !== undefined) throw new TypeError('a client of a broker has exactly one endpoint, the broker')
    checkEndpoint(endpoint, 'connect')
    if (this.channels.some((c) => c.endpoint === endpoint)) throw new TypeError(`already connected to ${endpoint}`)
    this.channels = [...this.channels, this.newChannel(endpoint)]
  }

  /**
   * Stops sending calls to `endpoint`: calls already sent there finish (by answer or deadline), calls
   * still waiting for it fail with UNAVAILABLE `{ notStarted: true }` and are retried on another
   * endpoint. Resolves once its connection is closed. The last endpoint cannot be removed.
   */
  removeEndpoint(endpoint: string): Promise<void> {
    const channel = this.channels.find((c) => c.endpoint === endpoint)
    if (channel === undefined) return Promise.reject(new TypeError(`not connected to ${endpoint}`))
    if (this.channels.length === 1) return Promise.reject(new TypeError('cannot remove the last endpoint; close() the client instead'))
    this.channels = this.channels.filter((c) => c !== channel)
    this.draining.add(channel)
    return channel.drain().finally(() => this.draining.delete(channel))
  }

  /** A typed proxy for one service: one async function per method of the contract. */
  service<S extends ServiceDefinition>(service: S): ServiceClient<S> {
    const proxy: Record<string, unknown> = {}
    const checkParams = this.options.validateParams ?? true
    const checkResults = this.options.validateResults ?? true
    const limits = this.limits
    for (const [method, validators] of validatorsFor(service)) {
      const idempotent = service.methods[method]?.idempotent === true
      const name = service.name
      const decode = (resultBytes: Uint8Array): unknown => {
        let result: unknown
        try {
          result = decodeCbor(resultBytes, limits)
        } catch (err) {
          throw new RpcError('INTERNAL', `unreadable result from ${name}.${method}: ${(err as Error).message}`)
        }
        if (checkResults) {
          const wrong = validators.result(result)
          if (wrong !== undefined) throw wrong
        }
        return result
      }
      if (validators.stream) {
        proxy[method] = (params: unknown, options: StreamOptions = NO_OPTIONS): AsyncIterableIterator<unknown> => {
          try {
            if (checkParams) {
              const invalid = validators.params(params)
              if (invalid !== undefined) throw invalid
            }
            return this.openStream(name, method, encodeParams(params), options, idempotent, decode)
          } catch (err) {
            return failedStream(err)
          }
        }
        continue
      }
      proxy[method] = (params: unknown, options: CallOptions = NO_OPTIONS): Promise<unknown> => {
        if (checkParams) {
          const invalid = validators.params(params)
          if (invalid !== undefined) return Promise.reject(invalid)
        }
        let bytes: Buffer
        try {
          bytes = encodeParams(params)
        } catch (err) {
          return Promise.reject(err)
        }
        return this.invoke(name, method, bytes, options, idempotent, decode)
      }
    }
    return Object.freeze(proxy) as ServiceClient<S>
  }

  /** A stream's reader; the call starts on its first `next()`. Throws what is wrong with the options. */
  private openStream(service: string, method: string, params: Uint8Array, options: StreamOptions, idempotent: boolean, decode: (bytes: Uint8Array) => unknown): StreamReader<unknown> {
    if (this.closed) throw new RpcError('CANCELLED', 'client is closed')
    const timeoutMs = options.timeoutMs ?? this.timeoutMs
    if (timeoutMs !== this.timeoutMs) checkTimeout(timeoutMs)
    checkMetadata(options.metadata)
    const window = options.window ?? DEFAULT_STREAM_WINDOW
    if (!(Number.isInteger(window) && window >= 1 && window <= MAX_STREAM_CREDIT)) {
      throw new RpcError('INVALID_ARGUMENT', `window must be an integer from 1 to ${MAX_STREAM_CREDIT}, got ${String(window)}`)
    }
    const waitForReady = options.waitForReady ?? this.options.waitForReady ?? false
    const { signal, metadata } = options
    const { info } = options
    return new StreamReader(this.streamRoute, { service, method, params, timeoutMs, signal, metadata, waitForReady, idempotent, window, info }, decode)
  }

  /** Where streams send their attempts: the same choice of channel as calls. */
  private readonly streamRoute: StreamRoute = {
    pick: (tried) => this.pickChannel(tried),
    elsewhere: (tried) => this.options.broker !== undefined || this.channels.some((c) => !tried.has(c)),
    closed: () => this.closed,
  }

  /**
   * Deferred calls for a service behind the broker: `submit` gives a ticket once the broker has
   * accepted the call, `collect` gets its result later, from any client (see client-queue.ts).
   * Only for a client of a broker.
   */
  queue<S extends ServiceDefinition>(service: S): QueueClient<S> {
    if (this.options.broker === undefined) throw new TypeError('deferred calls go through a broker: new RpcClient({ broker })')
    return queueClient(service, this.service(BrokerQueue), validatorsFor(service), this.options.validateParams ?? true)
  }

  /**
   * The untyped call underneath the proxies: params and result as CBOR bytes. It knows no
   * idempotency, so only calls that never started are retried.
   */
  call(service: string, method: string, params: Uint8Array, options: CallOptions = NO_OPTIONS): Promise<Uint8Array> {
    return this.invoke(service, method, params, options, false, undefined) as Promise<Uint8Array>
  }

  /**
   * One call, with the retries {@link retryPolicy} allows (at most {@link MAX_ATTEMPTS}, within the
   * first deadline, never after the caller's signal aborted), each on the best channel left; the
   * result through `decode` when given. No async frame: the caller gets the one promise of a
   * {@link ClientCall}, which the channel settles; only a failure goes through {@link afterFailure}.
   */
  private invoke(service: string, method: string, params: Uint8Array, options: CallOptions, idempotent: boolean, decode: Decode): Promise<unknown> {
    if (this.closed) return Promise.reject(new RpcError('CANCELLED', 'client is closed'))
    const timeoutMs = options.timeoutMs ?? this.timeoutMs
    const { signal, metadata } = options
    try {
      if (timeoutMs !== this.timeoutMs) checkTimeout(timeoutMs)
      if (metadata !== undefined) checkMetadata(metadata)
    } catch (err) {
      return Promise.reject(err)
    }
    const waitForReady = options.waitForReady ?? this.options.waitForReady ?? false
    const channel = this.channels.length === 1 ? this.channels[0]! : this.pickChannel(undefined)
    const promise = new Promise<unknown>(capture)
    const call = new ClientCall(this.afterFailureOf, service, method, params, Date.now() + timeoutMs, signal, metadata, waitForReady, idempotent, decode, channel)
    // An idempotent call may be retried: its key lets a server that already ran it answer from its record.
    if (idempotent) call.key = this.nextKey()
    if (options.info !== undefined) {
      call.info = options.info
      options.info.attempts = 1
    }
    channel.call(call)
    return promise
  }

  /** A call key: unique to this client (8 random bytes) and to the call (a count). */
  private nextKey(): Buffer {
    const key = Buffer.allocUnsafe(16)
    this.keyPrefix.copy(key, 0)
    const n = ++this.lastKey
    key.writeUInt32BE(Math.floor(n / 2 ** 32), 8)
    key.writeUInt32BE(n >>> 0, 12)
    return key
  }

  /** {@link afterFailure} bound once per client, so a call carries no closure of its own. */
  private readonly afterFailureOf = (call: ClientCall, err: unknown): Promise<unknown> => this.afterFailure(call, err)

  /**
   * After a failed first attempt: the retries the table allows, or the error with the caller's stack.
   * The caller's promise is resolved with this one, so it settles the same way.
   */
  private async afterFailure(call: ClientCall, err: unknown): Promise<unknown> {
    // Two turns, so that the caller's promise has adopted this one before anything throws: from then
    // on V8's async stack trace runs from here through it to the caller's awaits (withCallerStack).
    await undefined
    await undefined
    const tried = new Set<Channel>([call.channel])
    let last = call.channel
    let waitForReady = call.waitForReady
    for (let attempt = 2; ; attempt++) {
      const elsewhere = this.options.broker !== undefined || this.channels.some((c) => !tried.has(c))
      const again = attempt <= MAX_ATTEMPTS && call.deadline - Date.now() >= 1 && call.signal?.aborted !== true && !this.closed && retryPolicy(err, call.idempotent, elsewhere)
      if (!again) throw withCallerStack(err)
      waitForReady ||= retryWaitsForReady(err)
      const channel = await this.retryChannel(err, last, tried, call.deadline)
      // Back to a place already tried (a broker, or the only server): not at once, so a burst of
      // failures does not come back as a burst of retries. A server that came back is not waited for.
      if (tried.has(channel) && !(channel === last && channel.state === 'ready' && connectionWasLost(err))) {
        await backoff(attempt, call.deadline)
      }
      tried.add(channel)
      last = channel
      const promise = new Promise<unknown>(capture)
      const retry = new ClientCall(undefined, call.service, call.method, call.params, call.deadline, call.signal, call.metadata, waitForReady, call.idempotent, undefined, channel)
      retry.key = call.key
      retry.info = call.info
      if (call.info !== undefined) (call.info as { attempts?: number }).attempts = attempt
      channel.call(retry)
      let result: unknown
      try {
        result = await promise
      } catch (next) {
        err = next
        continue
      }
      try {
        return call.decode === undefined ? result : call.decode(result as Uint8Array)
      } catch (wrong) {
        throw withCallerStack(wrong)
      }
    }
  }

  /**
   * Where a retry goes. A call whose connection was lost may have run there: if that server comes
   * back (its connection up again, not refused or marked down), the retry goes to it, whose call
   * record answers with the first run's outcome, so a live server is never asked to run it twice
   * and no other server runs it while the first one lives. Otherwise (it is gone), another endpoint.
   */
  private async retryChannel(err: unknown, last: Channel, tried: ReadonlySet<Channel>, deadline: number): Promise<Channel> {
    if (!connectionWasLost(err) || !this.channels.includes(last)) return this.pickChannel(tried)
    await last.settled(deadline)
    return last.state === 'ready' ? last : this.pickChannel(tried)
  }

  /**
   * The channel for a call: among the best-placed endpoints (connected, then still connecting (its
   * first attempt may succeed), then failing; among equals, one this call has not tried yet), the
   * balancer's pick. So a dead server among several holds no share of the calls, load decides among
   * live ones, and a retry goes elsewhere when it can.
   */
  private pickChannel(tried: ReadonlySet<Channel> | undefined): Channel {
    let bestRank = Infinity
    let best: Channel[] = []
    for (const channel of this.channels) {
      const rank = STATE_RANK[channel.state] * 2 + (tried?.has(channel) === true ? 1 : 0)
      if (rank < bestRank) {
        bestRank = rank
        best = [channel]
      } else if (rank === bestRank) best.push(channel)
    }
    return best.length === 1 ? best[0]! : this.balancer.pick(best)
  }

  /** Calls in flight on all connections. */
  get inFlight(): number {
    return this.channels.reduce((n, c) => n + c.inFlight, 0)
  }

  /** Per connection: its endpoint, its state (and why), and its counters. */
  get stats(): Array<ChannelStats & { endpoint: string }> {
    return this.channels.map((c) => ({ endpoint: c.endpoint, ...c.stats }))
  }

  /**
   * Ends every pending call with CANCELLED, after sending each server a CANCEL for it (so its
   * handler's signal aborts), then closes the sockets. Takes at most about 100 ms.
   */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.all([...this.channels, ...this.draining].map((c) => c.close()))
  }
}

const NO_OPTIONS: CallOptions = Object.freeze({})

/** The client's heartbeat setting, checked, with its defaults filled in. */
function heartbeatOptions(setting: RpcClientSettings['heartbeat']): HeartbeatOptions | false {
  if (setting === false) return false
  const intervalMs = setting?.intervalMs ?? HEARTBEAT_DEFAULTS.intervalMs
  const timeoutMs = setting?.timeoutMs ?? Math.max(HEARTBEAT_DEFAULTS.timeoutMs, 2 * intervalMs)
  if (!(Number.isFinite(intervalMs) && intervalMs >= 10 && Number.isFinite(timeoutMs) && timeoutMs > intervalMs)) {
    throw new TypeError(`heartbeat needs intervalMs >= 10 and timeoutMs > intervalMs, got ${intervalMs} and ${timeoutMs}`)
  }
  return { intervalMs, timeoutMs }
}

/** Turns a call's result bytes into the caller's value, or throws the RpcError the caller gets. */
type Decode = ((bytes: Uint8Array) => unknown) | undefined

// One executor for every call's promise: it hands the resolvers to the next ClientCall without a
// closure per call.
let nextResolve: (value: unknown) => void = () => {}
let nextReject: (err: unknown) => void = () => {}
function capture(resolve: (value: unknown) => void, reject: (err: unknown) => void): void {
  nextResolve = resolve
  nextReject = reject
}

/**
 * A call and the promise its caller holds (made right before it, by `new Promise(capture)`). A
 * reply settles the promise at once, through `decode`; a failure hands the call to the client's
 * retry path, or, for a retry attempt (no `retry`), rejects its promise for that path to handle.
 */
class ClientCall extends ChannelCall {
  private readonly resolver = nextResolve
  private readonly rejecter = nextReject

  constructor(
    private readonly retry: ((call: ClientCall, err: unknown) => Promise<unknown>) | undefined,
    service: string,
    method: string,
    params: Uint8Array,
    deadline: number,
    signal: AbortSignal | undefined,
    metadata: Metadata | undefined,
    waitForReady: boolean,
    readonly idempotent: boolean,
    readonly decode: Decode,
    /** The channel of the first attempt. */
    readonly channel: Channel,
  ) {
    super(service, method, params, deadline, signal, metadata, waitForReady)
  }

  succeeded(result: Uint8Array): void {
    if (this.decode === undefined) return this.resolver(result)
    let value: unknown
    try {
      value = this.decode(result)
    } catch (err) {
      return this.resolver(failLater(err))
    }
    this.resolver(value)
  }

  failed(err: RpcError): void {
    if (this.retry === undefined) this.rejecter(err)
    else this.resolver(this.retry(this, err))
  }
}

/** Waits before attempt `attempt` (2, 3, ...): 25 ms doubling, with jitter (half to all of it), never past a tenth of the time left. */
function backoff(attempt: number, deadline: number): Promise<void> {
  const ms = Math.min(RETRY_BACKOFF_MS * 2 ** (attempt - 2) * (0.5 + Math.random() / 2), (deadline - Date.now()) / 10)
  return ms < 1 ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, ms))
}

/** First retry backoff (ms) for a retry that goes back to a place already tried. */
const RETRY_BACKOFF_MS = 25

/** A promise that rejects with `err`, carrying the stack of whoever awaits the one it settles (see afterFailure). */
async function failLater(err: unknown): Promise<never> {
  await undefined
  await undefined
  throw withCallerStack(err)
}

const STATE_RANK = { ready: 0, connecting: 1, failing: 2, closed: 3 } as const

/**
 * Points the error's stack at the caller's code rather than the receive loop that built it (as
 * grpc-js does). Called in an async function whose promise the caller's promise has adopted, V8's
 * async stack trace holds the caller's frames; this runs only on failure, so successful calls pay nothing.
 */
function withCallerStack(err: unknown): unknown {
  if (err instanceof RpcError) Error.captureStackTrace(err, withCallerStack)
  return err
}

function encodeParams(params: unknown): Buffer {
  try {
    return encodeCbor(params)
  } catch (err) {
    throw new RpcError('INVALID_ARGUMENT', `params cannot be encoded as CBOR: ${(err as Error).message}`)
  }
}

function checkTimeout(timeoutMs: number): void {
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0 && timeoutMs <= MAX_ID)) {
    throw new RpcError('INVALID_ARGUMENT', `timeoutMs must be a positive number of milliseconds up to 2^53-1, got ${String(timeoutMs)}`)
  }
}

function checkMetadata(metadata: Metadata | undefined): void {
  if (metadata === undefined) return
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new RpcError('INVALID_ARGUMENT', `metadata value for ${JSON.stringify(k)} must be a string`)
  }
}
