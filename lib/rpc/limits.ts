/** Defaults shared by both ends of a call. */

/** Largest message a zrpc socket sends or accepts, unless configured: gRPC's default, 4 MiB. */
export const DEFAULT_MAX_MESSAGE_SIZE = 4 * 1024 * 1024

/** Time budget of a call whose caller gave none. Every call has a deadline. */
export const DEFAULT_TIMEOUT_MS = 30_000
