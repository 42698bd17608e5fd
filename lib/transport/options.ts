/**
 * Socket options, in one table, from byte budgets.
 *
 * libzmq bounds its queues in messages (high-water marks), not bytes. A queue of N messages of at
 * most `maxMessageSize` bytes holds at most N x maxMessageSize, so the high-water marks are derived
 * from a byte budget per peer and direction: the bound that matters is in bytes, the mark follows.
 * docs/limits.md lists every default.
 */

/** Options every zrpc socket takes; each has a default. */
export interface TransportOptions {
  /** Largest message sent or accepted, in bytes (ZMQ_MAXMSGSIZE): libzmq drops the connection of a peer that sends more. */
  readonly maxMessageSize: number
  /**
   * Bytes that libzmq may hold for one peer in each direction (default 64 MiB): the send and
   * receive high-water marks are this divided by maxMessageSize, at least {@link MIN_HIGH_WATER_MARK}.
   */
  readonly peerBufferBytes?: number
  /** Bytes the send queue (in JavaScript, in front of the socket) may hold; past it a send is refused (default 64 MiB). */
  readonly maxQueuedBytes?: number
  /** Bytes parked for one slow peer of a ROUTER before its messages are dropped and counted (default 8 MiB). */
  readonly maxParkedBytesPerPeer?: number
  /** Join queued bodies for the same peer into one frame, up to `maxFrameBytes` (default true). */
  readonly coalesce?: boolean
  /** Largest joined frame, in bytes; a single larger body still goes out alone. */
  readonly maxFrameBytes?: number
  /** How long close() waits for queued messages to leave (default 0 for connecting sockets, 200 ms for bound ones). */
  readonly lingerMs?: number
  /** First reconnect delay after a lost connection (default 100 ms), doubling up to `reconnectMaxIntervalMs` (default 2000 ms). */
  readonly reconnectIntervalMs?: number
  readonly reconnectMaxIntervalMs?: number
  /**
   * After a connection ends without libzmq retrying it (an oversized message, a protocol error), the
   * socket is replaced by a fresh one after this long (default 500 ms), so a connecting socket never stays dead.
   */
  readonly recoverAfterMs?: number
}

/** Budgets in bytes used when an option is not given. */
export const TRANSPORT_DEFAULTS = {
  peerBufferBytes: 64 * 1024 * 1024,
  maxQueuedBytes: 64 * 1024 * 1024,
  maxParkedBytesPerPeer: 8 * 1024 * 1024,
  maxFrameBytes: 64 * 1024,
  reconnectIntervalMs: 100,
  reconnectMaxIntervalMs: 2000,
  recoverAfterMs: 500,
} as const

/** Fewest messages a high-water mark allows: bursts of small frames must not be dropped. */
export const MIN_HIGH_WATER_MARK = 16

/** The high-water mark (messages) that keeps one peer's queue within `budgetBytes`. */
export function highWaterMark(budgetBytes: number, maxMessageSize: number): number {
  return Math.max(MIN_HIGH_WATER_MARK, Math.floor(budgetBytes / maxMessageSize))
}

/** libzmq options for a zeromq.js socket, derived from {@link TransportOptions}. */
export function zmqOptions(options: TransportOptions, bound: boolean, canSend = true): Record<string, number> {
  const hwm = highWaterMark(options.peerBufferBytes ?? TRANSPORT_DEFAULTS.peerBufferBytes, options.maxMessageSize)
  return {
    maxMessageSize: options.maxMessageSize,
    // A SUB socket has no send high-water mark in zeromq.js (setting one throws).
    ...(canSend && { sendHighWaterMark: hwm }),
    receiveHighWaterMark: hwm,
    linger: options.lingerMs ?? (bound ? 200 : 0),
    reconnectInterval: options.reconnectIntervalMs ?? TRANSPORT_DEFAULTS.reconnectIntervalMs,
    reconnectMaxInterval: options.reconnectMaxIntervalMs ?? TRANSPORT_DEFAULTS.reconnectMaxIntervalMs,
  }
}
