/**
 * RpcServer: serves typed services on ZeroMQ endpoints.
 *
 * @example
 * const server = new RpcServer().implement(Calc, { add: async ({ a, b }) => a + b })
 * const [endpoint] = await server.bind('tcp://127.0.0.1:*')
 */
import { RpcError } from '../errors.js'
import { DEFAULT_CBOR_LIMITS, decodeCbor, encodeCbor, type CborLimits } from '../codec/cbor.js'
import { Dispatcher, type DispatcherStats, type RawHandler } from '../rpc/dispatcher.js'
import { Listener, type ListenerStats } from '../rpc/listener.js'
import { BrokerWorker, type BrokerWorkerOptions, type BrokerWorkerStats } from '../rpc/broker-worker.js'
import { DEFAULT_MAX_MESSAGE_SIZE } from '../rpc/limits.js'
import type { ServiceDefinition, ServiceHandlers } from './contract.js'
import { validatorsFor } from './validator.js'

export interface RpcServerOptions {
  /** Handlers running at once (default 256). */
  readonly maxConcurrent?: number
  /** Calls waiting behind them (default 1024); past it calls fail fast with RESOURCE_EXHAUSTED. */
  readonly maxQueued?: number
  /** Largest message accepted or sent, in bytes (default 4 MiB); set on the sockets too. */
  readonly maxMessageSize?: number
  /** Check each result against its schema before sending it (default true); a mismatch is INTERNAL. */
  readonly validateResults?: boolean
  /** Join replies that wait behind a send into one frame (default true). */
  readonly coalesce?: boolean
  /** How long close() lets running calls finish (default 5000 ms). */
  readonly closeTimeoutMs?: number
  /** Sees errors thrown by handlers that were not RpcErrors (the caller only sees INTERNAL). */
  readonly onHandlerError?: (err: unknown, service: string, method: string) => void
}

/** How a server attaches to a broker ({@link RpcServer.connectBroker}). */
export interface ConnectBrokerOptions {
  /** Requests each service handles at once through this broker: one MDP worker socket each (default 1). */
  readonly concurrency?: number
  /** Must match the broker's heartbeat interval in ms (default 2500). */
  readonly heartbeatMs?: number
  /** Must match the broker's liveness (default 3). */
  readonly liveness?: number
}

export interface RpcServerStats {
  readonly calls: DispatcherStats
  readonly input: ListenerStats[]
  /** One entry per broker worker ({@link RpcServer.connectBroker}). */
  readonly broker: BrokerWorkerStats[]
}

export class RpcServer {
  private readonly handlers = new Map<string, RawHandler>()
  private readonly dispatcher: Dispatcher
  private readonly listeners: Listener[] = []
  private readonly brokerWorkers: BrokerWorker[] = []
  /** Brokers this server serves through, so services implemented later register there too. */
  private readonly brokers: Array<{ endpoint: string; concurrency: number; options: BrokerWorkerOptions }> = []
  private readonly services = new Set<string>()
  private readonly limits: CborLimits
  private readonly maxMessageSize: number
  private closing: Promise<void> | undefined

  constructor(private readonly options: RpcServerOptions = {}) {
    this.maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE
    this.limits = { ...DEFAULT_CBOR_LIMITS, maxBytes: this.maxMessageSize }
    this.dispatcher = new Dispatcher((service, method) => this.handlers.get(key(service, method)), {
      ...(options.maxConcurrent !== undefined && { maxConcurrent: options.maxConcurrent }),
      ...(options.maxQueued !== undefined && { maxQueued: options.maxQueued }),
      ...(options.onHandlerError !== undefined && { onHandlerError: options.onHandlerError }),
    })
  }

  /** Adds a service. Every method of the contract needs a handler. */
  implement<S extends ServiceDefinition>(service: S, handlers: ServiceHandlers<S>): this {
    const validate = this.options.validateResults ?? true
    for (const [method, validators] of validatorsFor(service)) {
      const handler = (handlers as Record<string, (p: unknown, ctx: never) => unknown>)[method]
      if (typeof handler !== 'function') throw new TypeError(`no handler for ${service.name}.${method}`)
      if (this.handlers.has(key(service.name, method))) throw new TypeError(`${service.name}.${method} is already implemented`)
      const raw: RawHandler = async (bytes, ctx) => {
        let params: unknown
        try {
          params = decodeCbor(bytes, this.limits)
        } catch (err) {
          throw new RpcError('INVALID_ARGUMENT', `params are not readable CBOR: ${(err as Error).message}`)
        }
        const invalid = validators.params(params)
        if (invalid !== undefined) throw invalid
        const result = await handler.call(handlers, params, ctx as never)
        if (validate) {
          const wrong = validators.result(result)
          if (wrong !== undefined) throw wrong
        }
        try {
          return encodeCbor(result)
        } catch (err) {
          throw new RpcError('INTERNAL', `result of ${service.name}.${method} cannot be encoded: ${(err as Error).message}`)
        }
      }
      this.handlers.set(key(service.name, method), raw)
    }
    this.services.add(service.name)
    for (const broker of this.brokers) this.startBrokerWorkers(broker.endpoint, service.name, broker.concurrency, broker.options)
    return this
  }

  /** Binds to one or more endpoints; returns them resolved (ephemeral ports filled in). */
  async bind(endpoints: string | string[]): Promise<string[]> {
    if (this.closing !== undefined) throw new RpcError('UNAVAILABLE', 'server is closed')
    let listener = this.listeners[0]
    if (listener === undefined) {
      listener = new Listener(this.dispatcher, { maxMessageSize: this.maxMessageSize, coalesce: this.options.coalesce ?? true })
      this.listeners.push(listener)
    }
    const resolved: string[] = []
    for (const endpoint of typeof endpoints === 'string' ? [endpoints] : endpoints) resolved.push(await listener.bind(endpoint))
    return resolved
  }

  /**
   * Registers with a Majordomo broker as a worker for every service implemented, `concurrency`
   * workers per service (services implemented later register too). Same validation, deadlines and errors as direct calls; a CANCEL cannot
   * reach a worker through the broker, the handler's signal still aborts at the deadline. The workers
   * re-register by themselves when the broker restarts.
   */
  connectBroker(endpoint: string, options: ConnectBrokerOptions = {}): Promise<void> {
    if (this.closing !== undefined) return Promise.reject(new RpcError('UNAVAILABLE', 'server is closed'))
    const concurrency = options.concurrency ?? 1
    if (!(Number.isInteger(concurrency) && concurrency >= 1)) return Promise.reject(new TypeError(`concurrency must be a positive integer, got ${concurrency}`))
    if (this.services.size === 0) return Promise.reject(new TypeError('implement a service before connecting to a broker'))
    const workerOptions = { maxMessageSize: this.maxMessageSize, heartbeatMs: options.heartbeatMs ?? 2500, liveness: options.liveness ?? 3 }
    this.brokers.push({ endpoint, concurrency, options: workerOptions })
    for (const service of this.services) this.startBrokerWorkers(endpoint, service, concurrency, workerOptions)
    return Promise.resolve()
  }

  private startBrokerWorkers(endpoint: string, service: string, concurrency: number, options: BrokerWorkerOptions): void {
    for (let i = 0; i < concurrency; i++) this.brokerWorkers.push(new BrokerWorker(this.dispatcher, endpoint, service, options))
  }

  /**
   * Stops taking calls (new ones get UNAVAILABLE), lets running calls finish for up to `timeoutMs`,
   * fails the rest with UNAVAILABLE, then closes the sockets.
   */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    this.closing ??= (async () => {
      await this.dispatcher.close(options.timeoutMs ?? this.options.closeTimeoutMs ?? 5000)
      await Promise.all([...this.listeners.map((l) => l.close()), ...this.brokerWorkers.map((w) => w.close())])
    })()
    return this.closing
  }

  get stats(): RpcServerStats {
    return { calls: { ...this.dispatcher.stats }, input: this.listeners.map((l) => ({ ...l.stats })), broker: this.brokerWorkers.map((w) => ({ ...w.stats })) }
  }
}

function key(service: string, method: string): string {
  return `${service}\u0000${method}`
}
