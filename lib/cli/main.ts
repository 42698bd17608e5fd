/**
 * The `zrpc` command line. One subcommand per file; this file only dispatches, and answers
 * `--help` and `--version` for the whole command.
 *
 * Exit codes: 0 done (or usage asked for), 1 failed at run time (or no command given), 2 usage error.
 * Usage asked for goes to stdout; every complaint goes to stderr, so scripts can trust stdout.
 */
import { readFileSync } from 'node:fs'
import { BENCH_USAGE, runBench } from './bench.js'
import { BROKER_USAGE, runBroker } from './broker.js'
import { PROXY_USAGE, runProxyCommand } from './proxy.js'
import { KEYGEN_USAGE, runKeygen } from './keygen.js'

export const USAGE = `usage: zrpc <command> [options]
       zrpc --help | --version

commands:
  demo      start a server and clients on loopback, make typed calls, print what happened
  broker    run a broker for typed RPC
  proxy     run a PUB/SUB proxy between --xsub and --xpub endpoints
  bench     run the benchmarks of a checkout of the repository
  keygen    write a CURVE key pair (secret key readable by its owner only)
  help      show this text, or a command's: zrpc help <command>

options:
  -h, --help     show this text
  -v, --version  print the version of zrpc

zrpc <command> --help shows a command's options.`

export const DEMO_USAGE = `usage: zrpc demo

Starts a server, clients, a publisher and a broker on loopback (127.0.0.1, ports chosen by the
system), makes typed calls, a deadline, a cancel and a validation error, prints what happened,
then closes everything and exits. Takes no options.

  -h, --help  show this text`

// A Map, not an object literal, so `zrpc help toString` finds nothing instead of Object.prototype's.
const COMMAND_USAGE: ReadonlyMap<string, string> = new Map([
  ['demo', DEMO_USAGE],
  ['broker', BROKER_USAGE],
  ['proxy', PROXY_USAGE],
  ['bench', BENCH_USAGE],
  ['keygen', KEYGEN_USAGE],
])

const isHelp = (arg: string | undefined): boolean => arg === '--help' || arg === '-h'

/**
 * Runs the CLI with `argv` (without node and the script) and returns the exit code.
 * @example process.exitCode = await main(process.argv.slice(2))
 */
export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv
  switch (command) {
    case undefined:
      return usageError(USAGE, 1)
    case 'help':
    case '--help':
    case '-h': {
      const topic = command === 'help' ? rest[0] : undefined
      if (topic === undefined) return print(USAGE)
      const usage = COMMAND_USAGE.get(topic)
      return usage === undefined ? usageError(`zrpc: no help for ${JSON.stringify(topic)}\n${USAGE}`) : print(usage)
    }
    case '--version':
    case '-v':
      return print(packageVersion())
    case 'demo':
      if (rest.some(isHelp)) return print(DEMO_USAGE)
      if (rest.length > 0) return usageError(`zrpc demo: unexpected argument ${JSON.stringify(rest[0])}\n${DEMO_USAGE}`)
      // Loaded only now, as the broker is: the demo's contracts take a quarter second to load.
      await (await import('./demo.js')).runDemo()
      return 0
    case 'broker':
      return runBroker(rest)
    case 'proxy':
      return runProxyCommand(rest)
    case 'bench':
      return runBench(rest)
    case 'keygen':
      return runKeygen(rest)
    default:
      return usageError(`zrpc: unknown ${command.startsWith('-') ? 'option' : 'command'} ${JSON.stringify(command)}\n${USAGE}`)
  }
}

/**
 * The version in zrpc's own package.json, read when asked so it is the installed one. Walks up
 * from this module because the depth differs: dist/lib/cli/ when built, lib/cli/ when run from
 * source.
 */
export function packageVersion(): string {
  let dir = new URL('.', import.meta.url)
  for (;;) {
    const pkg = readPackageJson(new URL('package.json', dir))
    if (pkg?.name === 'zrpc' && typeof pkg.version === 'string') return pkg.version
    const parent = new URL('..', dir)
    if (parent.href === dir.href) throw new Error('cannot find the package.json of zrpc')
    dir = parent
  }
}

function readPackageJson(url: URL): { name?: unknown; version?: unknown } | undefined {
  try {
    return JSON.parse(readFileSync(url, 'utf8')) as { name?: unknown; version?: unknown }
  } catch {
    // None here (or not JSON): the caller looks one directory up.
    return undefined
  }
}

function print(text: string): number {
  process.stdout.write(`${text}\n`)
  return 0
}

function usageError(text: string, code = 2): number {
  process.stderr.write(`${text}\n`)
  return code
}
