/**
 * Deferred calls, typed: submit a call through the broker and get a ticket at once; collect its
 * result later by ticket, from this client or any other. The broker runs the call whether or not the
 * submitter is still there (docs/protocol.md, "Deferred calls"; the broker's `zrpc.queue` service).
 *
 * @example
 * const jobs = client.queue(Reports)                       // client = new RpcClient({ broker })
 * const ticket = await jobs.build.submit({ month: 11 })    // accepted (written to disk on a durable broker)
 * const report = await jobs.build.collect(ticket, { waitMs: 30_000 })
 */
import { decodeCbor, encodeCbor } from '../codec/cbor.js'
import type { Metadata } from '../codec/envelope.js'
import { RpcError, isStatusCode } from '../errors.js'
import { BrokerQueue, type TicketView } from './queue-contract.js'
import type { ParamsOf, ResultOf, ServiceClient, ServiceDefinition, StreamMethodDefinition } from './contract.js'
import type { MethodValidators } from './validator.js'

/** Options of a submit. */
export interface SubmitOptions {
  /** The call's budget, counted from submission (default 1 hour). */
  readonly timeoutMs?: number
  readonly metadata?: Metadata
}

/** What a ticket says now. */
export type TicketStatus<R> =
  | { readonly state: 'queued' | 'running' }
  | { readonly state: 'done'; readonly result: R }
  | { readonly state: 'failed' | 'cancelled' | 'expired'; readonly error: RpcError }
  | { readonly state: 'unknown' }

/** The deferred side of one method. */
export interface QueueMethod<P, R> {
  /** Queues the call; resolves with its ticket once the broker has accepted it. */
  submit(params: P, options?: SubmitOptions): Promise<string>
  /**
   * The result, waiting up to `waitMs` (default 0) for the call to end; the ticket is forgotten once
   * collected. Throws the call's RpcError if it failed, was cancelled or expired; `NOT_FOUND` for a
   * ticket the broker does not hold; `UNAVAILABLE` `{ pending: true }` if it has not ended within `waitMs`.
   */
  collect(ticket: string, options?: { readonly waitMs?: number }): Promise<R>
  /** Where the call is, without waiting and without forgetting the ticket. */
  status(ticket: string): Promise<TicketStatus<R>>
  /** Cancels the call (out of the queue, or CANCEL to its worker); false if it had already ended or is unknown. */
  cancel(ticket: string): Promise<boolean>
}

/** The deferred side of a contract: one QueueMethod per unary method. */
export type QueueClient<S extends ServiceDefinition> = {
  readonly [K in keyof S['methods'] as S['methods'][K] extends StreamMethodDefinition ? never : K]: QueueMethod<ParamsOf<S['methods'][K]>, ResultOf<S['methods'][K]>>
}

/** Margin on top of waitMs for the collect call itself to come back. */
const COLLECT_MARGIN_MS = 5000

/**
 * Builds the typed queue for `service` on the broker's `zrpc.queue` client. `validators` checks
 * params before submitting and results on collecting, as direct calls do.
 */
export function queueClient<S extends ServiceDefinition>(service: S, queue: ServiceClient<typeof BrokerQueue>, validators: Map<string, MethodValidators>, checkParams: boolean): QueueClient<S> {
  const out: Record<string, QueueMethod<unknown, unknown>> = {}
  for (const [method, v] of validators) {
    if (v.stream) continue
    const idempotent = service.methods[method]?.idempotent === true
    const outcome = (ticket: string, seen: TicketView): TicketStatus<unknown> => {
      switch (seen.state) {
        case 'done': {
          if (!(seen.result instanceof Uint8Array)) throw new RpcError('INTERNAL', `ticket ${ticket} is done but the broker sent no result`)
          let result: unknown
          try {
            result = decodeCbor(seen.result)
          } catch (err) {
            throw new RpcError('INTERNAL', `unreadable result for ticket ${ticket}: ${(err as Error).message}`)
          }
          const wrong = v.result(result)
          if (wrong !== undefined) throw wrong
          return { state: 'done', result }
        }
        case 'failed':
        case 'cancelled':
        case 'expired': {
          const code = seen.error !== undefined && isStatusCode(seen.error.code) ? seen.error.code : 'UNKNOWN'
          return { state: seen.state, error: new RpcError(code, seen.error?.message ?? `ticket ${ticket} ${seen.state}`, seen.error?.details ?? undefined) }
        }
        case 'queued':
        case 'running':
        case 'unknown':
          return { state: seen.state }
      }
    }
    out[method] = {
      submit: async (params, options = {}) => {
        if (checkParams) {
          const invalid = v.params(params)
          if (invalid !== undefined) throw invalid
        }
        const { ticket } = await queue.submit({
          service: service.name,
          method,
          params: encodeCbor(params),
          ...(options.timeoutMs !== undefined && { timeoutMs: options.timeoutMs }),
          ...(options.metadata !== undefined && { metadata: options.metadata }),
          idempotent,
        })
        return ticket
      },
      collect: async (ticket, options = {}) => {
        const waitMs = options.waitMs ?? 0
        const status = outcome(ticket, await queue.collect({ ticket, waitMs }, { timeoutMs: waitMs + COLLECT_MARGIN_MS }))
        switch (status.state) {
          case 'done':
            return status.result
          case 'failed':
          case 'cancelled':
          case 'expired':
            throw status.error
          case 'unknown':
            throw new RpcError('NOT_FOUND', `the broker holds no ticket ${ticket} (never issued, already collected, or past its retention)`)
          case 'queued':
          case 'running':
            throw new RpcError('UNAVAILABLE', `ticket ${ticket} is still ${status.state} after ${waitMs} ms`, { pending: true, state: status.state })
        }
      },
      status: async (ticket) => outcome(ticket, await queue.status({ ticket })),
      cancel: (ticket) => queue.cancel({ ticket }),
    }
  }
  return Object.freeze(out) as QueueClient<S>
}
