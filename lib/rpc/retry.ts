/**
 * The one retry table: whether a failed call may be sent again, and how often.
 *
 * ```
 *   error details            idempotent method   other method
 *   { notStarted: true }     retry elsewhere     retry elsewhere   the server or worker never started it
 *   { notStarted, broker }   no                  no             the broker itself refused it: it would again
 *   { workerLost: true }     retry               no             it may have run
 *   { connectionLost: true } retry               no             it may have run
 *   anything else            no                  no
 * ```
 * "Elsewhere" is another endpoint this call has not tried, or, through a broker, another worker (the
 * broker picks one); the same busy or closing server asked again at once would refuse again. A
 * call lost with its connection may have run: its retry goes back to that server if it comes back
 * (whose call record answers it, so it does not run twice), elsewhere only if it is gone (the
 * client's retryChannel; docs/protocol.md, "Retries and the call record").
 * At most {@link MAX_ATTEMPTS} attempts, all within the call's original deadline, and never once the
 * caller's signal has aborted. A retry after a lost worker or connection waits for a connection
 * (the endpoint was up a moment ago: a restart); a retry of a call refused before it started fails
 * fast like a new call. docs/protocol.md (section 3, Client) states the same rule.
 */
import { RpcError } from '../errors.js'

/** Attempts of one call, first included: a bound, so a poison request or a dead cluster cannot loop. */
export const MAX_ATTEMPTS = 3

/** What the details of an error say about where the call got to. */
function detail(err: RpcError, key: 'notStarted' | 'workerLost' | 'connectionLost' | 'broker'): boolean {
  const details = err.details
  return typeof details === 'object' && details !== null && (details as Record<string, unknown>)[key] === true
}

/**
 * True when a call that failed with `err` may be sent again. `elsewhere` says whether there is
 * another place to send it: an endpoint not tried yet, or a broker (which picks another worker).
 *
 * @example
 * if (attempt < MAX_ATTEMPTS && retryPolicy(err, method.idempotent === true, untried > 0)) tryAgain()
 */
export function retryPolicy(err: unknown, idempotent: boolean, elsewhere: boolean): boolean {
  if (!(err instanceof RpcError)) return false
  if (detail(err, 'notStarted')) return elsewhere && !detail(err, 'broker')
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

/** True when `err` says the call's connection was lost (it may have run; the server may come back). */
export function connectionWasLost(err: unknown): boolean {
  return err instanceof RpcError && detail(err, 'connectionLost')
}
