/**
 * The `zrpc` command line. One subcommand per file; this file only dispatches.
 */
import { runDemo } from './demo.js'
import { BROKER_USAGE, runBroker } from './broker.js'
import { runProxyCommand } from './proxy.js'

const USAGE = `usage: zrpc <command>

commands:
  demo      start a server and clients on loopback, make typed calls, print what happened
  broker    run a broker for typed RPC (zrpc broker --help for options)
  proxy     --xsub <endpoint> --xpub <endpoint>: run a PUB/SUB proxy until SIGINT/SIGTERM
  help      show this text`

/** Runs the CLI with `argv` (without node and the script) and returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv
  switch (command) {
    case 'broker':
      if (rest.includes('--help') || rest.includes('-h')) {
        process.stdout.write(`${BROKER_USAGE}\n`)
        return 0
      }
      return runBroker(rest)
    case 'demo':
      await runDemo()
      return 0
    case 'proxy':
      return runProxyCommand(argv.slice(1))
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`)
      return command === undefined ? 1 : 0
    default:
      process.stderr.write(`zrpc: unknown command ${JSON.stringify(command)}\n${USAGE}\n`)
      return 2
  }
}
