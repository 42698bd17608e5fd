/** zrpc: typed RPC and messaging over ZeroMQ. This file is the public surface and nothing else. */
export { RpcError, STATUS_CODES, RETRYABLE_CODES, isStatusCode, type StatusCode } from './errors.js'
