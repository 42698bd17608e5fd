/**
 * Service contracts: a name and a set of methods, each with TypeBox schemas for its params and its
 * result, or, for a stream, the schema of each item. The definition carries its own types, so one
 * value gives both the client proxy's types and the handlers' types, and the same schemas are
 * compiled into run-time validators.
 *
 * @example
 * const Calc = defineService('calc', {
 *   add: { params: Type.Object({ a: Type.Number(), b: Type.Number() }), result: Type.Number() },
 *   count: { params: Type.Object({ to: Type.Number() }), stream: Type.Number() },   // a server stream
 * })
 */
import type { Static, TSchema } from 'typebox'
import type { CallContext } from '../rpc/dispatcher.js'
import type { Metadata } from '../codec/envelope.js'

/** A unary method: what it takes, what it returns, and whether running it twice is harmless. */
export interface UnaryMethodDefinition<P extends TSchema = TSchema, R extends TSchema = TSchema> {
  readonly params: P
  readonly result: R
  readonly stream?: never
  /** True if a retry after a lost reply cannot do harm (allows retries on another server). */
  readonly idempotent?: boolean
}

/**
 * A server stream: what it takes, and the schema of each item it yields. The handler is an async
 * generator; the caller reads with `for await`, granting credit as it reads (flow control).
 */
export interface StreamMethodDefinition<P extends TSchema = TSchema, I extends TSchema = TSchema> {
  readonly params: P
  readonly stream: I
  readonly result?: never
  /** True if opening the stream again after it was lost before its first item cannot do harm. */
  readonly idempotent?: boolean
}

export type MethodDefinition = UnaryMethodDefinition | StreamMethodDefinition

export type MethodMap = Record<string, MethodDefinition>

/** A named service: what {@link defineService} returns. */
export interface ServiceDefinition<M extends MethodMap = MethodMap> {
  readonly name: string
  readonly methods: M
}

const NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/

/** Declares a service contract. Names are checked now, so a typo fails at start-up, not on a call. */
export function defineService<const M extends MethodMap>(name: string, methods: M): ServiceDefinition<M> {
  if (!NAME.test(name)) throw new TypeError(`invalid service name ${JSON.stringify(name)}: use letters, digits, _ . -`)
  for (const [method, definition] of Object.entries(methods)) {
    if (!NAME.test(method)) throw new TypeError(`invalid method name ${JSON.stringify(method)} in service ${name}`)
    const { result, stream } = definition as { result?: unknown; stream?: unknown }
    if ((result === undefined) === (stream === undefined)) throw new TypeError(`${name}.${method} needs exactly one of result (a unary method) or stream (a server stream)`)
  }
  return Object.freeze({ name, methods })
}

/**
 * Filled in by the client as a call goes: which endpoint (server or broker) answered it, and in how
 * many attempts. Pass an object in {@link CallOptions.info} and read it after the call settles.
 */
export interface CallInfo {
  /** The endpoint that answered (for a stream: the one serving it). */
  endpoint?: string
  /** Attempts made, the first included (retries: docs/protocol.md, section 3). */
  attempts?: number
}

/** Per-call options a caller may pass as the last argument. */
export interface CallOptions {
  /** An object the client fills in with where the call was answered (see {@link CallInfo}). */
  readonly info?: CallInfo
  /** Time budget for this call in ms (default: the client's `timeoutMs`). */
  readonly timeoutMs?: number
  /** Aborting it cancels the call: the caller gets CANCELLED and the server's `ctx.signal` aborts. */
  readonly signal?: AbortSignal
  /** Text key/value pairs for the handler (`ctx.metadata`). */
  readonly metadata?: Metadata
  /**
   * Wait for a connection until the deadline instead of failing fast (default: the client's
   * `waitForReady`, false). Without it, a call while the server cannot be reached (refused,
   * unresolvable) ends at once with UNAVAILABLE naming the endpoint, as in gRPC.
   */
  readonly waitForReady?: boolean
}

/** Per-call options of a stream. */
export interface StreamOptions extends CallOptions {
  /**
   * Items the server may send ahead of the reader (default 16, at most 65 536): the client buffers
   * at most this many, and grants more as the loop takes them. Memory per stream is at most
   * `window` × maxMessageSize.
   */
  readonly window?: number
}

export type ParamsOf<D extends MethodDefinition> = Static<D['params']>
export type ResultOf<D extends MethodDefinition> = D extends UnaryMethodDefinition<TSchema, infer R> ? Static<R> : never
export type ItemOf<D extends MethodDefinition> = D extends StreamMethodDefinition<TSchema, infer I> ? Static<I> : never

/**
 * A stream as the caller holds it: read it with `for await`. Breaking out of the loop (or `return()`)
 * cancels the call at the server; an error ends the loop with an RpcError that says why.
 */
export type ClientStream<T> = AsyncIterableIterator<T>

/** The client side of a contract: one async function per unary method, one stream per stream method. */
export type ServiceClient<S extends ServiceDefinition> = {
  readonly [K in keyof S['methods']]: S['methods'][K] extends StreamMethodDefinition
    ? (params: ParamsOf<S['methods'][K]>, options?: StreamOptions) => ClientStream<ItemOf<S['methods'][K]>>
    : (params: ParamsOf<S['methods'][K]>, options?: CallOptions) => Promise<ResultOf<S['methods'][K]>>
}

/** The server side of a contract: one handler per method, all required; a stream's is an (async) generator. */
export type ServiceHandlers<S extends ServiceDefinition> = {
  readonly [K in keyof S['methods']]: S['methods'][K] extends StreamMethodDefinition
    ? (params: ParamsOf<S['methods'][K]>, ctx: CallContext) => AsyncIterable<ItemOf<S['methods'][K]>> | Iterable<ItemOf<S['methods'][K]>>
    : (params: ParamsOf<S['methods'][K]>, ctx: CallContext) => Promise<ResultOf<S['methods'][K]>> | ResultOf<S['methods'][K]>
}
