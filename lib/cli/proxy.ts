/**
 * `zrpc proxy --xsub <endpoint> --xpub <endpoint>`: an XSUB/XPUB proxy in the foreground, so
 * publishers and subscribers meet at two well-known endpoints. Stops cleanly on SIGINT or SIGTERM.
 */
import { parseArgs } from 'node:util'
import { TopicProxy } from '../pubsub/proxy.js'

export const PROXY_USAGE = `usage: zrpc proxy --xsub <endpoint> --xpub <endpoint>

Runs a PUB/SUB proxy in the foreground until SIGINT or SIGTERM.

  -h, --help           show this text
  --xsub               endpoint to bind for publishers, e.g. tcp://127.0.0.1:5556
  --xpub               endpoint to bind for subscribers, e.g. tcp://127.0.0.1:5557
  --max-message-size   largest message passed on, all frames together (default 4194304); larger ones are dropped and counted
  --max-subscriptions  distinct prefixes passed up to publishers (default 10000); further ones are refused and counted`

/** What the proxy needs to run; `{ help: true }` when usage was asked for. */
export type ProxyArgs =
  | { readonly xsub: string; readonly xpub: string; readonly maxMessageSize?: number; readonly maxSubscriptions?: number }
  | { readonly help: true }

/**
 * Parses `--xsub` and `--xpub` (either `--xsub a` or `--xsub=a`) and `-h`/`--help`; a string is
 * the complaint, so the caller decides where it goes.
 * @example parseProxyArgs(['--xsub', 'tcp://127.0.0.1:5556', '--xpub', 'tcp://127.0.0.1:5557'])
 */
export function parseProxyArgs(argv: readonly string[]): ProxyArgs | string {
  let values
  try {
    ;({ values } = parseArgs({
      args: [...argv],
      options: {
        help: { type: 'boolean', short: 'h' },
        xsub: { type: 'string' },
        xpub: { type: 'string' },
        'max-message-size': { type: 'string' },
        'max-subscriptions': { type: 'string' },
      },
      strict: true,
    }))
  } catch (err) {
    return (err as Error).message
  }
  if (values.help === true) return { help: true }
  const { xsub, xpub } = values
  if (xsub === undefined || xpub === undefined) return 'both --xsub and --xpub are required'
  const maxMessageSize = positiveInteger(values['max-message-size'])
  if (maxMessageSize === null || (maxMessageSize !== undefined && maxMessageSize < 64 * 1024)) return '--max-message-size needs a whole number of bytes, at least 65536'
  const maxSubscriptions = positiveInteger(values['max-subscriptions'])
  if (maxSubscriptions === null) return '--max-subscriptions needs a positive whole number'
  return { xsub, xpub, ...(maxMessageSize !== undefined && { maxMessageSize }), ...(maxSubscriptions !== undefined && { maxSubscriptions }) }
}

/** undefined when absent, null when not a positive integer. */
function positiveInteger(text: string | undefined): number | undefined | null {
  if (text === undefined) return undefined
  const n = Number(text)
  return /^\d+$/.test(text) && Number.isSafeInteger(n) && n > 0 ? n : null
}

/**
 * Runs the proxy until `stop` aborts (the CLI aborts it on SIGINT/SIGTERM); returns the exit code:
 * 0 after a stop or `--help`, 1 if it cannot bind, 2 for bad arguments (complaints go to stderr).
 * Verbose upstream: every subscribe reaches the publishers, so their last-value caches answer each
 * late joiner. Bounded: 4 MiB per message and 10 000 distinct prefixes unless the flags say otherwise.
 */
export async function runProxy(argv: readonly string[], stop: AbortSignal, print: (line: string) => void = (line) => process.stdout.write(`${line}\n`)): Promise<number> {
  const args = parseProxyArgs(argv)
  if (typeof args === 'string') {
    process.stderr.write(`zrpc proxy: ${args}\n${PROXY_USAGE}\n`)
    return 2
  }
  if ('help' in args) {
    print(PROXY_USAGE)
    return 0
  }
  const proxy = new TopicProxy({
    ...(args.maxMessageSize !== undefined && { maxMessageSize: args.maxMessageSize }),
    ...(args.maxSubscriptions !== undefined && { maxSubscriptions: args.maxSubscriptions }),
  })
  let endpoints
  try {
    endpoints = await proxy.bind(args.xsub, args.xpub)
  } catch (err) {
    // A busy port or a bad endpoint is the user's to fix: one line on stderr, no stack trace.
    await proxy.close()
    process.stderr.write(`zrpc proxy: cannot bind: ${(err as Error).message}\n`)
    return 1
  }
  try {
    const { frontend, backend } = endpoints
    print(`proxy: publishers connect to ${frontend}`)
    print(`proxy: subscribers connect to ${backend}`)
    if (!stop.aborted) await new Promise((resolve) => stop.addEventListener('abort', resolve, { once: true }))
  } finally {
    await proxy.close()
  }
  const { messages, subscriptions, oversized, subscriptionsRefused, dropped } = proxy.stats
  print(`proxy: stopped after ${messages} messages, ${subscriptions} subscriptions (dropped: ${oversized} oversized, ${subscriptionsRefused} subscriptions over the limit, ${dropped} queue full)`)
  return 0
}

/** {@link runProxy} wired to SIGINT and SIGTERM. */
export async function runProxyCommand(argv: readonly string[]): Promise<number> {
  const stop = new AbortController()
  const onSignal = (): void => stop.abort()
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    return await runProxy(argv, stop.signal)
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}
