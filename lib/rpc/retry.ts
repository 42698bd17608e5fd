/**
 * The one retry table: whether a failed call may be sent again, and how often.
 *
 * ```
 *   error details            idempotent method   other method
 *   { notStarted: true }     retry               retry          the server, worker or broker never started it
 *   { workerLost: true }     retry               no             it may have run
 *   { connectionLost: true } retry               no             it may have run
 *   anything else            no                  no
 * ```
 * At most {@link MAX_ATTEMPTS} attempts, all within the call's original deadline, and never once the
 * caller's signal has aborted. A retry after a lost worker or connection waits for a connection
 * (the endpoint was up a moment ago: a restart); a retry of a call refused before it started fails
 * fast like a new call. docs/protocol.md (section 3, Client) states the same rule.
 */
import { RpcError } from '../errors.js'

/** Attempts of one call, first included: a bound, so a poison request or a dead cluster cannot loop. */
export const MAX_ATTEMPTS = 3

/** What the details of an error say about where the call got to. */
function detail(err: RpcError, key: 'notStarted' | 'workerLost' | 'connectionLost'): boolean {
  const details = err.details
  return typeof details === 'object' && details !== null && (details as Record<string, unknown>)[key] === true
}

/**
 * True when a call that failed with `err` may be sent again (on any endpoint).
 *
 * @example
 * if (attempt < MAX_ATTEMPTS && retryPolicy(err, method.idempotent === true)) tryAgain()
 */
export function retryPolicy(err: unknown, idempotent: boolean): boolean {
  if (!(err instanceof RpcError)) return false
  if (detail(err, 'notStarted')) return true
  if (!idempotent || err.code !== 'UNAVAILABLE') return false
  return detail(err, 'workerLost') || detail(err, 'connectionLost')
}

/**
 * True when the retry of a call that failed with `err` should wait for a connection, up to the
 * deadline, rather than fail fast: the call was in flight when its worker or connection went, so
 * the endpoint was reachable a moment ago and is likely restarting.
 */
export function retryWaitsForReady(err: unknown): boolean {
  return err instanceof RpcError && !detail(err, 'notStarted') && (detail(err, 'workerLost') || detail(err, 'connectionLost'))
}
