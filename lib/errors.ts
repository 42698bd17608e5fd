/**
 * RpcError and the closed set of status codes every zrpc call ends with.
 *
 * The codes are gRPC's status names, so people who know gRPC read them without a table.
 * Inside the library errors travel as values; they are thrown only at the API edge.
 *
 * @example
 * throw new RpcError('NOT_FOUND', `no user ${id}`, { id })
 */

/** Every status code a call can fail with, in gRPC's order. */
export const STATUS_CODES = [
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const

/** One of the gRPC status names. */
export type StatusCode = (typeof STATUS_CODES)[number]

const codeSet: ReadonlySet<string> = new Set(STATUS_CODES)

/** True when `value` is one of the status names (for checking codes that came off the wire). */
export function isStatusCode(value: unknown): value is StatusCode {
  return typeof value === 'string' && codeSet.has(value)
}

/**
 * Codes that may carry a retry hint. The code alone never decides a retry: the details do
 * (`notStarted`, `workerLost`, `connectionLost`), through the one table in lib/rpc/retry.ts
 * that the client uses for every retry.
 */
export const RETRYABLE_CODES: ReadonlySet<StatusCode> = new Set(['UNAVAILABLE', 'RESOURCE_EXHAUSTED'])

/**
 * The error every failed zrpc call rejects with.
 *
 * A handler may throw one with its own code; any other throw reaches the caller as `INTERNAL`
 * without the server's message or stack.
 */
export class RpcError extends Error {
  override readonly name = 'RpcError'
  /**
   * On the client: the endpoint (server or broker) this error came from or is about, when the call
   * got that far; with several servers it says which one answered. Never sent over the wire.
   */
  endpoint: string | undefined = undefined

  constructor(
    /** The status code, one of {@link STATUS_CODES}. */
    readonly code: StatusCode,
    message: string,
    /** Optional structured detail, sent to the caller as CBOR (for example validation errors). */
    readonly details?: unknown,
  ) {
    super(message)
  }

  /** True if `err` is an RpcError, optionally with the given code. */
  static is(err: unknown, code?: StatusCode): err is RpcError {
    return err instanceof RpcError && (code === undefined || err.code === code)
  }
}
