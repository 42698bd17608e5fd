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
import { RpcError } from '../errors.js'
import { DEFAULT_CBOR_LIMITS, decodeCbor, encodeCbor, type CborLimits } from '../codec/cbor.js'
import { MAX_ID, type Metadata } from '../codec/envelope.js'
import { Channel, type ChannelStats } from '../rpc/channel.js'
import { mdpFraming } from '../rpc/framing.js'
import type { CallOptions, ServiceClient, ServiceDefinition } from './contract.js'
import { validatorsFor } from './validator.js'
import { DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_TIMEOUT_MS } from '../rpc/limits.js'

/** Where an {@link RpcClient} sends its calls: to servers directly, or through a broker. */
export type RpcClientTarget =
  | {
      /** A server endpoint, or several: calls are spread over them in turn. */
      readonly connect: string | readonly string[]
      readonly broker?: never
    }
  | {
      /**
       * A Majordomo broker's endpoint. Calls go to whichever worker the broker picks; cancelling a call
       * ends it here only (the worker's signal aborts at the deadline). Idempotent methods are retried
       * within their deadline when the broker reports their worker lost.
       */
      readonly broker: string
      readonly connect?: never
    }

export type RpcClientOptions = RpcClientTarget & RpcClientSettings

export interface RpcClientSettings {
  /** Default time budget of every call in ms (default 30 000). Every call has a deadline. */
  readonly timeoutMs?: number
  /** Largest message sent or accepted, in bytes (default 4 MiB). */
  readonly maxMessageSize?: number
  /** Join calls that wait behind a send into one frame (default true). */
  readonly coalesce?: boolean
  /** Check params against their schema before sending (default true): INVALID_ARGUMENT locally. */
  readonly validateParams?: boolean
  /** Check results against their schema on arrival (default false: the server checks them). */
  readonly validateResults?: boolean
}

export class RpcClient {
  private readonly channels: Channel[]
  private readonly limits: CborLimits
  private readonly timeoutMs: number
  private nextChannel = 0
  private lastId = 0
  private closed = false

  constructor(private readonly options: RpcClientOptions) {
    const endpoints = options.broker !== undefined ? [options.broker] : typeof options.connect === 'string' ? [options.connect] : [...(options.connect ?? [])]
    if (endpoints.length === 0) throw new TypeError('RpcClient needs at least one endpoint to connect to')
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
    checkTimeout(this.timeoutMs)
    const maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE
    this.limits = { ...DEFAULT_CBOR_LIMITS, maxBytes: maxMessageSize }
    // Ids wrap within 32 bits: compact on the wire, and far more than the calls one client has in flight.
    const nextId = (): number => (this.lastId = this.lastId >= 0xffffffff ? 1 : this.lastId + 1)
    const framing = options.broker !== undefined ? { framing: mdpFraming } : {}
    this.channels = endpoints.map((e) => new Channel(e, nextId, { maxMessageSize, coalesce: options.coalesce ?? true, ...framing }))
  }

  /** A typed proxy for one service: one async function per method of the contract. */
  service<S extends ServiceDefinition>(service: S): ServiceClient<S> {
    const proxy: Record<string, unknown> = {}
    const checkParams = this.options.validateParams ?? true
    const checkResults = this.options.validateResults ?? false
    for (const [method, validators] of validatorsFor(service)) {
      const idempotent = service.methods[method]?.idempotent === true
      proxy[method] = async (params: unknown, options: CallOptions = {}): Promise<unknown> => {
        if (checkParams) {
          const invalid = validators.params(params)
          if (invalid !== undefined) throw invalid
        }
        const bytes = encodeParams(params)
        const resultBytes = idempotent ? await this.callRetrying(service.name, method, bytes, options) : await this.call(service.name, method, bytes, options)
        let result: unknown
        try {
          result = decodeCbor(resultBytes, this.limits)
        } catch (err) {
          throw new RpcError('INTERNAL', `unreadable result from ${service.name}.${method}: ${(err as Error).message}`)
        }
        if (checkResults) {
          const wrong = validators.result(result)
          if (wrong !== undefined) throw wrong
        }
        return result
      }
    }
    return Object.freeze(proxy) as ServiceClient<S>
  }

  /** The untyped call underneath the proxies: params and result as CBOR bytes. */
  call(service: string, method: string, params: Uint8Array, options: CallOptions = {}): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new RpcError('CANCELLED', 'client is closed'))
    const timeoutMs = options.timeoutMs ?? this.timeoutMs
    try {
      checkTimeout(timeoutMs)
      checkMetadata(options.metadata)
    } catch (err) {
      return Promise.reject(err)
    }
    const channel = this.pickChannel()
    return channel.call(service, method, params, { deadline: Date.now() + timeoutMs, signal: options.signal, metadata: options.metadata })
  }

  /**
   * Calls again, within the same deadline, when the broker reports the worker lost or the connection
   * dropped (a server or the broker went away). Only for idempotent methods: the call may have run.
   */
  private async callRetrying(service: string, method: string, params: Uint8Array, options: CallOptions): Promise<Uint8Array> {
    const deadline = Date.now() + (options.timeoutMs ?? this.timeoutMs)
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.call(service, method, params, options)
      } catch (err) {
        const left = deadline - Date.now()
        if (!(isLost(err) && attempt < MAX_ATTEMPTS && left >= 1 && !options.signal?.aborted)) throw err
        options = { ...options, timeoutMs: left }
      }
    }
  }

  /**
   * The next channel in turn that is connected, so a dead server among several does not hold a share
   * of the calls until their deadlines; if none is connected yet, the next in turn (its calls wait
   * for the connection, up to their deadlines).
   */
  private pickChannel(): Channel {
    const count = this.channels.length
    const first = this.nextChannel++ % count
    for (let i = 0; i < count; i++) {
      const channel = this.channels[(first + i) % count]!
      if (channel.connected) return channel
    }
    return this.channels[first]!
  }

  /** Calls in flight on all connections. */
  get inFlight(): number {
    return this.channels.reduce((n, c) => n + c.inFlight, 0)
  }

  /** Per connection: its endpoint, whether it is up, and its counters. */
  get stats(): Array<ChannelStats & { endpoint: string; connected: boolean }> {
    return this.channels.map((c) => ({ endpoint: c.endpoint, connected: c.connected, ...c.stats }))
  }

  /** Rejects every pending call with CANCELLED and closes the sockets. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const channel of this.channels) channel.close()
    await Promise.resolve()
  }
}

/** Attempts of an idempotent call whose workers keep dying: a bound, so a poison request cannot loop. */
const MAX_ATTEMPTS = 3

/** The call may or may not have run, and nothing else went wrong: a worker or a connection was lost. */
function isLost(err: unknown): boolean {
  if (!RpcError.is(err, 'UNAVAILABLE')) return false
  const details = err.details as { workerLost?: unknown; connectionLost?: unknown } | undefined
  return typeof details === 'object' && details !== null && (details.workerLost === true || details.connectionLost === true)
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
    throw new RpcError('INVALID_ARGUMENT', `timeoutMs must be a positive number of milliseconds, got ${String(timeoutMs)}`)
  }
}

function checkMetadata(metadata: Metadata | undefined): void {
  if (metadata === undefined) return
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new RpcError('INVALID_ARGUMENT', `metadata value for ${JSON.stringify(k)} must be a string`)
  }
}
