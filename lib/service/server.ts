/**
 * RpcServer: serves typed services on ZeroMQ endpoints.
 *
 * @example
 * const server = new RpcServer().implement(Calc, { add: async ({ a, b }) => a + b })
 * const [endpoint] = await server.bind('tcp://127.0.0.1:*')
 */
import { RpcError } from '../errors.js'
import { DEFAULT_CBOR_LIMITS, decodeCbor, encodeCbor, type CborLimits } from '../codec/cbor.js'
import { Dispatcher, type CallContext, type DispatcherStats, type RawHandler } from '../rpc/dispatcher.js'
import { Listener, type ListenerStats } from '../rpc/listener.js'
import { BrokerWorker, type BrokerWorkerOptions, type BrokerWorkerStats } from '../rpc/broker-worker.js'
import { DEFAULT_MAX_MESSAGE_SIZE } from '../rpc/limits.js'
import { MAX_WORKER_CREDIT } from '../rpc/mdp-frames.js'
import { atDeadline } from '../rpc/deadline-timer.js'
import type { CallRecordOptions } from '../rpc/call-record.js'
import type { CurveOptions } from '../transport/curve.js'
import { SocketSecurity } from '../transport/security.js'
import type { ZapStats } from '../transport/zap.js'
import { TRANSPORT_DEFAULTS } from '../transport/options.js'
import type { ServiceDefinition, ServiceHandlers } from './contract.js'
import { validatorsFor } from './validator.js'

export interface RpcServerOptions {
  /** Handlers running at once (default 256). */
  readonly maxConcurrent?: number
  /** Calls waiting behind them (default 1024); past it calls fail fast with RESOURCE_EXHAUSTED. */
  readonly maxQueued?: number
  /** Calls one caller (connection) may hold, running plus queued (default max(16, ceil((maxConcurrent + maxQueued) / 4))). */
  readonly maxPerPeer?: number
  /** Handlers one caller may run at once (default max(1, ceil(maxConcurrent * 3 / 4))); a quarter stays free for others. */
  readonly maxConcurrentPerPeer?: number
  /** Bytes of params that queued calls may hold, in total (default 64 MiB). */
  readonly maxQueuedBytes?: number
  /** Bytes of params that one caller's queued calls may hold (default a quarter of maxQueuedBytes). */
  readonly maxQueuedBytesPerPeer?: number
  /** Bytes of replies waiting to be sent, all callers together (default 64 MiB). */
  readonly maxUnsentBytes?: number
  /** Bytes of replies kept for one caller that does not read them, before its oldest are dropped (default 8 MiB). */
  readonly maxUnsentBytesPerPeer?: number
  /**
   * Largest message accepted or sent, in bytes (default 4 MiB); set on the sockets too. At least
   * 64 KiB: clients join small calls into frames of up to 64 KiB, which every receiver must accept.
   */
  readonly maxMessageSize?: number
  /** Check each result against its schema before sending it (default true); a mismatch is INTERNAL. */
  readonly validateResults?: boolean
  /** Join replies that wait behind a send into one frame (default true). */
  readonly coalesce?: boolean
  /** How long close() may take, running calls' grace included (default 5000 ms). */
  readonly closeTimeoutMs?: number
  /** Sees errors thrown by handlers that were not RpcErrors (the caller only sees INTERNAL). */
  readonly onHandlerError?: (err: unknown, service: string, method: string) => void
  /**
   * The record of recent idempotent calls by call key, so a retry that reaches this server after it
   * ran (or while it runs) the call gets that outcome instead of a second run: `maxBytes` (default
   * 16 MiB, keys and outcomes together), `ttlMs` (default 60 000, after the call finished),
   * `maxEntryBytes` (default 1 MiB; a larger result is not kept). `false`: no record.
   */
  readonly callRecord?: CallRecordOptions | false
  /**
   * CURVE (docs/security.md): `{ publicKey, secretKey, allow? }`, Z85 keys. `allow`: the client public
   * keys let in, or `{ file }` of them one a line, read again when it changes; omitted, any client
   * that knows this server's public key. Refusals are counted in `stats.auth`.
   */
  readonly curve?: CurveOptions
  /** Called for each client refused by the allow list, with its key (Z85) and address. */
  readonly onRefused?: (publicKey: string, address: string) => void
}

/** How a server attaches to a broker ({@link RpcServer.connectBroker}). */
export interface ConnectBrokerOptions {
  /**
   * Requests each service handles at once through this broker (default 1, at most 4096): one worker
   * socket per service declares it as its credit, and a zrpc broker sends up to that many at once. A
   * plain 7/MDP broker ignores the credit and sends one request at a time.
   */
  readonly concurrency?: number
  /** CURVE toward the broker: `{ serverKey: the broker's public key, publicKey, secretKey }` (this worker's keys). */
  readonly curve?: CurveOptions
  /**
   * Heartbeat interval in ms (default 2500). Best equal to the broker's; if not, each worker answers
   * the broker's beats and judges its silence by the broker's own interval, and says so once through `onWarning`.
   */
  readonly heartbeatMs?: number
  /** Missed heartbeats before the broker counts as gone (default 3). */
  readonly liveness?: number
  /** Called once per worker with what to change when its heartbeat differs from the broker's. */
  readonly onWarning?: (message: string) => void
}

export interface RpcServerStats {
  readonly calls: DispatcherStats
  /** One entry per listening socket: bad input, and the socket's counters (received bytes, reply drops). */
  readonly input: ListenerStats[]
  /** One entry per broker worker ({@link RpcServer.connectBroker}). */
  readonly broker: BrokerWorkerStats[]
  /** CURVE clients let in and refused by the allow list (when there is one). */
  readonly auth?: ZapStats
}

/** The smallest maxMessageSize: the protocol-wide cap on joined frames, which every receiver must accept. */
export const MIN_MAX_MESSAGE_SIZE = TRANSPORT_DEFAULTS.maxFrameBytes
/** Room for an ITEM's envelope around its payload (array, version, kind, a 64-bit id, a byte string head). */
const ITEM_HEAD_BYTES = 32
/** Part of close()'s timeout kept for handing final answers to the sockets and closing them. */
const CLOSE_SOCKETS_MS = 200

export class RpcServer {
  /** Handlers by service, then method: found per call without building a key string. */
  private readonly handlers = new Map<string, Map<string, RawHandler>>()
  private readonly dispatcher: Dispatcher
  private listener: Listener | undefined
  private readonly brokerWorkers: BrokerWorker[] = []
  /** Brokers this server serves through, so services implemented later register there too. */
  private readonly brokers: Array<{ endpoint: string; options: BrokerWorkerOptions }> = []
  private readonly services = new Set<string>()
  private readonly limits: CborLimits
  private readonly maxMessageSize: number
  private closing: Promise<void> | undefined
  /** CURVE for the listening socket (and its allow list), transport/security.ts. */
  private readonly security: SocketSecurity

  constructor(private readonly options: RpcServerOptions = {}) {
    this.maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE
    if (!(Number.isInteger(this.maxMessageSize) && this.maxMessageSize >= MIN_MAX_MESSAGE_SIZE)) {
      throw new TypeError(
        `maxMessageSize must be an integer of at least ${MIN_MAX_MESSAGE_SIZE} bytes (64 KiB, the protocol's cap on joined frames), got ${this.maxMessageSize}`,
      )
    }
    this.limits = { ...DEFAULT_CBOR_LIMITS, maxBytes: this.maxMessageSize }
    this.security = SocketSecurity.for(options.curve, 'RpcServer', 'bind', options.onRefused)
    const { maxConcurrent, maxQueued, maxPerPeer, maxConcurrentPerPeer, maxQueuedBytes, maxQueuedBytesPerPeer, onHandlerError, callRecord } = options
    // The last method found is remembered: calls in a burst mostly go to one method, and comparing two
    // short strings is cheaper than hashing the fresh ones each envelope brings. Handlers are never removed.
    let last: { service: string; method: string; handler: RawHandler } | undefined
    const lookup = (service: string, method: string): RawHandler | undefined => {
      if (last !== undefined && last.method === method && last.service === service) return last.handler
      const handler = this.handlers.get(service)?.get(method)
      if (handler !== undefined) last = { service, method, handler }
      return handler
    }
    this.dispatcher = new Dispatcher(lookup, {
      ...(maxConcurrent !== undefined && { maxConcurrent }),
      ...(maxQueued !== undefined && { maxQueued }),
      ...(maxPerPeer !== undefined && { maxPerPeer }),
      ...(maxConcurrentPerPeer !== undefined && { maxConcurrentPerPeer }),
      ...(maxQueuedBytes !== undefined && { maxQueuedBytes }),
      ...(maxQueuedBytesPerPeer !== undefined && { maxQueuedBytesPerPeer }),
      ...(onHandlerError !== undefined && { onHandlerError }),
      ...(callRecord !== undefined && { callRecord }),
    })
  }

  /**
   * Adds a service. Every method of the contract needs a handler, and none may be implemented
   * already; otherwise this throws and registers nothing.
   */
  implement<S extends ServiceDefinition>(service: S, handlers: ServiceHandlers<S>): this {
    if (this.closing !== undefined) throw new RpcError('FAILED_PRECONDITION', `server is closed: cannot implement ${service.name}; implement services before close()`)
    const validate = this.options.validateResults ?? true
    const raws = new Map<string, RawHandler>()
    const methods = this.handlers.get(service.name)
    for (const [method, validators] of validatorsFor(service)) {
      const handler = (handlers as Record<string, (p: unknown, ctx: never) => unknown>)[method]
      if (typeof handler !== 'function') throw new TypeError(`no handler for ${service.name}.${method}`)
      if (methods?.has(method) === true) throw new TypeError(`${service.name}.${method} is already implemented`)
      const encodeResult = (result: unknown): Uint8Array => {
        if (validate) {
          const wrong = validators.result(result)
          if (wrong !== undefined) throw wrong
        }
        try {
          return encodeCbor(result)
        } catch (err) {
          throw new RpcError('INTERNAL', `${validators.stream ? 'item' : 'result'} of ${service.name}.${method} cannot be encoded: ${(err as Error).message}`)
        }
      }
      const decodeParams = (bytes: Uint8Array): unknown => {
        let params: unknown
        try {
          params = decodeCbor(bytes, this.limits)
        } catch (err) {
          throw new RpcError('INVALID_ARGUMENT', `params are not readable CBOR: ${(err as Error).message}`)
        }
        const invalid = validators.params(params)
        if (invalid !== undefined) throw invalid
        return params
      }
      let raw: RawHandler
      if (validators.stream) {
        const name = `${service.name}.${method}`
        const maxItemBytes = this.maxMessageSize - ITEM_HEAD_BYTES
        raw = Object.assign(
          (bytes: Uint8Array, ctx: CallContext): AsyncIterator<Uint8Array> => {
            const source = handler.call(handlers, decodeParams(bytes), ctx as never)
            return encodeItems(source, encodeResult, name, maxItemBytes)
          },
          { stream: true as const },
        )
      } else {
        // No async function: a handler that returns a plain value is answered without a promise or a microtask.
        raw = (bytes, ctx) => {
          const result = handler.call(handlers, decodeParams(bytes), ctx as never)
          return isThenable(result) ? Promise.resolve(result).then(encodeResult) : encodeResult(result)
        }
      }
      raws.set(method, raw)
    }
    if (methods === undefined) this.handlers.set(service.name, raws)
    else for (const [method, raw] of raws) methods.set(method, raw)
    this.services.add(service.name)
    for (const broker of this.brokers) this.brokerWorkers.push(new BrokerWorker(this.dispatcher, broker.endpoint, service.name, broker.options))
    return this
  }

  /** Binds to one or more endpoints; returns them resolved (ephemeral ports filled in). Safe to call concurrently. */
  async bind(endpoints: string | string[]): Promise<string[]> {
    if (this.closing !== undefined) throw new RpcError('UNAVAILABLE', 'server is closed')
    // The allow list is with the ZAP handler before the socket exists: no client gets in unchecked.
    await this.security.ready()
    this.listener ??= new Listener(this.dispatcher, {
      maxMessageSize: this.maxMessageSize,
      coalesce: this.options.coalesce ?? true,
      ...(this.options.maxUnsentBytes !== undefined && { maxUnsentBytes: this.options.maxUnsentBytes }),
      ...(this.options.maxUnsentBytesPerPeer !== undefined && { maxUnsentBytesPerPeer: this.options.maxUnsentBytesPerPeer }),
      security: this.security.socketOptions,
      ...(this.security.verifies && { verifyAuth: (key: Uint8Array, proof: Uint8Array) => this.security.verify(key, proof) }),
    })
    const listener = this.listener
    const bound = await Promise.all((typeof endpoints === 'string' ? [endpoints] : endpoints).map((endpoint) => listener.bind(endpoint)))
    for (const endpoint of bound) this.security.bound(endpoint)
    return bound
  }

  /**
   * Registers with a Majordomo broker as a worker for every service implemented, one worker socket
   * per service taking up to `concurrency` requests at once (services implemented later register
   * too). Same validation, deadlines, errors and streams as direct calls; a caller's CANCEL reaches
   * the handler through a zrpc broker (through another broker the signal still aborts at the
   * deadline). A stream holds one of the `concurrency` places until it ends. The workers re-register
   * by themselves when the broker restarts.
   */
  connectBroker(endpoint: string, options: ConnectBrokerOptions = {}): Promise<void> {
    if (this.closing !== undefined) return Promise.reject(new RpcError('UNAVAILABLE', 'server is closed'))
    const concurrency = options.concurrency ?? 1
    if (!(Number.isInteger(concurrency) && concurrency >= 1 && concurrency <= MAX_WORKER_CREDIT)) {
      return Promise.reject(new TypeError(`concurrency must be an integer from 1 to ${MAX_WORKER_CREDIT}, got ${concurrency}`))
    }
    if (this.services.size === 0) return Promise.reject(new TypeError('implement a service before connecting to a broker'))
    let security: SocketSecurity
    try {
      security = SocketSecurity.for(options.curve, 'connectBroker', 'connect')
    } catch (err) {
      return Promise.reject(err)
    }
    const workerOptions = {
      security: security.socketOptions,
      maxMessageSize: this.maxMessageSize,
      credit: concurrency,
      heartbeatMs: options.heartbeatMs ?? 2500,
      liveness: options.liveness ?? 3,
      ...(options.onWarning !== undefined && { onWarning: options.onWarning }),
    }
    this.brokers.push({ endpoint, options: workerOptions })
    for (const service of this.services) this.brokerWorkers.push(new BrokerWorker(this.dispatcher, endpoint, service, workerOptions))
    return Promise.resolve()
  }

  /**
   * Stops taking calls (new ones get UNAVAILABLE with `{ notStarted: true }`; behind a broker the
   * workers first tell the broker to route no more), fails queued calls the same way, lets running
   * calls finish, fails the rest with UNAVAILABLE, then closes the sockets. Resolves within
   * `timeoutMs` (default `closeTimeoutMs`) even if a handler never ends.
   */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    this.closing ??= this.shutdown(options.timeoutMs ?? this.options.closeTimeoutMs ?? 5000)
    return this.closing
  }

  private async shutdown(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + Math.max(0, timeoutMs)
    const socketsMs = Math.min(CLOSE_SOCKETS_MS, timeoutMs / 4)
    const left = (): number => Math.max(0, deadline - Date.now())
    this.dispatcher.stopTaking()
    // Behind a broker: stop being routed new work before draining (the helper may not exist yet).
    const stopping = this.brokerWorkers.map((w) => (hasStopTaking(w) ? w.stopTaking() : undefined))
    await within(left() - socketsMs, Promise.all(stopping))
    await this.dispatcher.close(left() - socketsMs)
    const closing = [...(this.listener === undefined ? [] : [this.listener.close(left() / 2)]), ...this.brokerWorkers.map((w) => w.close())]
    await within(left(), Promise.all(closing))
    await this.security.close()
  }

  get stats(): RpcServerStats {
    return {
      calls: this.dispatcher.stats,
      input: this.listener === undefined ? [] : [this.listener.stats],
      broker: this.brokerWorkers.map((w) => ({ ...w.stats })),
      ...(this.security.stats !== undefined && { auth: this.security.stats }),
    }
  }
}

/**
 * A stream handler's items, checked and encoded one by one as the pump pulls them. Leaving the loop
 * early (an error here, or `return()` from the pump) closes the handler's generator.
 */
async function* encodeItems(source: unknown, encode: (item: unknown) => Uint8Array, name: string, maxItemBytes: number): AsyncGenerator<Uint8Array, void, undefined> {
  if (!isIterable(source)) throw new RpcError('INTERNAL', `the handler of stream ${name} returned no (async) iterable; write it as an async generator (async function*)`)
  for await (const item of source) {
    const bytes = encode(item)
    if (bytes.length > maxItemBytes) throw new RpcError('RESOURCE_EXHAUSTED', `an item of ${name} is ${bytes.length} bytes, more than maxMessageSize allows (${maxItemBytes})`)
    yield bytes
  }
}

function isIterable(value: unknown): value is AsyncIterable<unknown> | Iterable<unknown> {
  return typeof value === 'object' && value !== null && (Symbol.asyncIterator in value || Symbol.iterator in value)
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function'
}

/** A broker worker that can tell its broker to route no more requests to it (added in parallel). */
function hasStopTaking(worker: BrokerWorker): worker is BrokerWorker & { stopTaking(): Promise<void> } {
  return typeof (worker as { stopTaking?: unknown }).stopTaking === 'function'
}

/** Waits for `work` at most `ms`; a rejection is ignored (close goes on whatever a part of it did). */
async function within(ms: number, work: Promise<unknown>): Promise<void> {
  let timer: { clear(): void } | undefined
  await Promise.race([work.catch(() => undefined), new Promise<void>((resolve) => (timer = atDeadline(Date.now() + Math.max(0, ms), resolve)))])
  timer?.clear()
}
