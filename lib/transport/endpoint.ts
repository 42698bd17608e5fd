/**
 * Endpoint strings, checked before any socket exists.
 *
 * libzmq answers a malformed endpoint with a bare `EINVAL` ("Invalid argument") and, by then, a
 * socket is open that keeps the process alive. Checking here gives an error that names the endpoint
 * and says what is wrong, and leaves nothing to close.
 *
 * ```
 *   tcp://host:port      host: a name, an IPv4 address or [IPv6]; port 1-65535 (bind: also *)
 *   ipc://path           a file system path (bind: also *)
 *   inproc://name        any non-empty name, within one process
 * ```
 */

/** An endpoint string that failed the check; `endpoint` is the string as given. */
export class EndpointError extends TypeError {
  override readonly name = 'EndpointError'
  constructor(
    readonly endpoint: string,
    reason: string,
  ) {
    super(`invalid endpoint ${JSON.stringify(endpoint)}: ${reason}`)
  }
}

/** Whether the endpoint is to be bound (ports and paths may be `*`) or connected to. */
export type EndpointUse = 'bind' | 'connect'

const HOST_NAME = /^[A-Za-z0-9]([A-Za-z0-9-]{0,62})?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62})?)*\.?$/
const IPV6 = /^\[[0-9A-Fa-f:.]+(%[A-Za-z0-9]+)?\]$/

/**
 * Returns `endpoint` unchanged if it is one libzmq accepts for `use`, else throws an {@link EndpointError}.
 *
 * @example
 * checkEndpoint('tcp://127.0.0.1:*', 'bind')   // ok
 * checkEndpoint('localhost:5555', 'connect')   // EndpointError: ... missing transport, e.g. tcp://localhost:5555
 */
export function checkEndpoint(endpoint: unknown, use: EndpointUse): string {
  if (typeof endpoint !== 'string') throw new EndpointError(String(endpoint), 'an endpoint is a string such as tcp://127.0.0.1:5555')
  const match = /^([a-z]+):\/\/(.*)$/.exec(endpoint)
  if (match === null) {
    const hint = /^[^/:]+:\d+$/.test(endpoint) ? `, e.g. tcp://${endpoint}` : ''
    throw new EndpointError(endpoint, `missing transport (tcp://, ipc:// or inproc://)${hint}`)
  }
  const [, transport, address] = match as unknown as [string, string, string]
  switch (transport) {
    case 'tcp':
      checkTcp(endpoint, address, use)
      return endpoint
    case 'ipc':
      if (address.length === 0) throw new EndpointError(endpoint, 'ipc needs a path')
      if (address === '*' && use === 'connect') throw new EndpointError(endpoint, 'cannot connect to a wildcard path')
      return endpoint
    case 'inproc':
      if (address.length === 0) throw new EndpointError(endpoint, 'inproc needs a name')
      return endpoint
    default:
      throw new EndpointError(endpoint, `unsupported transport ${transport}:// (use tcp://, ipc:// or inproc://)`)
  }
}

function checkTcp(endpoint: string, address: string, use: EndpointUse): void {
  const colon = address.lastIndexOf(':')
  if (colon < 0) throw new EndpointError(endpoint, 'tcp needs host:port')
  const host = address.slice(0, colon)
  const port = address.slice(colon + 1)
  // libzmq also accepts "interface;host" source addresses on connect; keep the part after ';'.
  const target = host.includes(';') ? host.slice(host.indexOf(';') + 1) : host
  if (target.length === 0) throw new EndpointError(endpoint, 'tcp needs a host before the port')
  if (target === '*') {
    if (use === 'connect') throw new EndpointError(endpoint, 'cannot connect to a wildcard host')
  } else if (!IPV6.test(target) && !HOST_NAME.test(target)) {
    throw new EndpointError(endpoint, `${JSON.stringify(target)} is not a host name or address`)
  }
  if (port === '*' || port === '!') {
    if (use === 'connect') throw new EndpointError(endpoint, 'cannot connect to a wildcard port')
    return
  }
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
    throw new EndpointError(endpoint, `port ${JSON.stringify(port)} is not a number from 1 to 65535${use === 'bind' ? ' or *' : ''}`)
  }
}
