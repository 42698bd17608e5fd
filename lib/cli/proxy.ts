/**
 * `zrpc proxy --xsub <endpoint> --xpub <endpoint>`: an XSUB/XPUB proxy in the foreground, so
 * publishers and subscribers meet at two well-known endpoints. Stops cleanly on SIGINT or SIGTERM.
 */
import { PubSubProxy } from '../../patterns/pubsub.js'

export const PROXY_USAGE = 'usage: zrpc proxy --xsub <endpoint for publishers> --xpub <endpoint for subscribers>'

/** Parses `--xsub` and `--xpub`; a string is the complaint. */
export function parseProxyArgs(argv: readonly string[]): { xsub: string; xpub: string } | string {
  const found: Record<string, string> = {}
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i]
    const value = argv[i + 1]
    if ((flag !== '--xsub' && flag !== '--xpub') || value === undefined || value.startsWith('--')) return `bad arguments: ${argv.join(' ')}`
    found[flag.slice(2)] = value
  }
  const { xsub, xpub } = found
  if (xsub === undefined || xpub === undefined) return 'both --xsub and --xpub are required'
  return { xsub, xpub }
}

/**
 * Runs the proxy until `stop` aborts (the CLI aborts it on SIGINT/SIGTERM); returns the exit code.
 * Verbose upstream: every subscribe reaches the publishers, so their last-value caches answer each
 * late joiner.
 */
export async function runProxy(argv: readonly string[], stop: AbortSignal, print: (line: string) => void = (line) => process.stdout.write(`${line}\n`)): Promise<number> {
  const args = parseProxyArgs(argv)
  if (typeof args === 'string') {
    process.stderr.write(`zrpc proxy: ${args}\n${PROXY_USAGE}\n`)
    return 2
  }
  const proxy = new PubSubProxy({ verbose: true })
  try {
    const { frontend, backend } = await proxy.bind(args.xsub, args.xpub)
    print(`proxy: publishers connect to ${frontend}`)
    print(`proxy: subscribers connect to ${backend}`)
    if (!stop.aborted) await new Promise((resolve) => stop.addEventListener('abort', resolve, { once: true }))
  } finally {
    await proxy.close()
  }
  print(`proxy: stopped after ${proxy.stats.messages} messages, ${proxy.stats.subscriptions} subscriptions`)
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
