/**
 * Service contracts: a name and a set of methods, each with TypeBox schemas for its params and its
 * result. The definition carries its own types, so one value gives both the client proxy's types and
 * the handlers' types, and the same schemas are compiled into run-time validators.
 *
 * @example
 * const Calc = defineService('calc', {
 *   add: { params: Type.Object({ a: Type.Number(), b: Type.Number() }), result: Type.Number() },
 * })
 */
import type { Static, TSchema } from 'typebox'
import type { CallContext } from '../rpc/dispatcher.js'
import type { Metadata } from '../codec/envelope.js'

/** One method: what it takes, what it returns, and whether running it twice is harmless. */
export interface MethodDefinition<P extends TSchema = TSchema, R extends TSchema = TSchema> {
  readonly params: P
  readonly result: R
  /** True if a retry after a lost reply cannot do harm (allows retries on another server). */
  readonly idempotent?: boolean
}

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
  for (const method of Object.keys(methods)) {
    if (!NAME.test(method)) throw new TypeError(`invalid method name ${JSON.stringify(method)} in service ${name}`)
  }
  return Object.freeze({ name, methods })
}

/** Per-call options a caller may pass as the last argument. */
export interface CallOptions {
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

export type ParamsOf<D extends MethodDefinition> = Static<D['params']>
export type ResultOf<D extends MethodDefinition> = Static<D['result']>

/** The client side of a contract: one async function per method. */
export type ServiceClient<S extends ServiceDefinition> = {
  readonly [K in keyof S['methods']]: (params: ParamsOf<S['methods'][K]>, options?: CallOptions) => Promise<ResultOf<S['methods'][K]>>
}

/** The server side of a contract: one handler per method, all required. */
export type ServiceHandlers<S extends ServiceDefinition> = {
  readonly [K in keyof S['methods']]: (
    params: ParamsOf<S['methods'][K]>,
    ctx: CallContext,
  ) => Promise<ResultOf<S['methods'][K]>> | ResultOf<S['methods'][K]>
}
