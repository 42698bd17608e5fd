/**
 * `zrpc broker`: runs a Majordomo broker for typed RPC in the foreground, one log line per worker
 * joining or leaving, until SIGINT or SIGTERM.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

/** Every maxMessageSize must hold a joined frame (64 KiB, docs/protocol.md). */
const MIN_MESSAGE_SIZE = 64 * 1024

export const BROKER_USAGE = `usage: zrpc broker [--bind endpoint]... [--heartbeat ms] [--liveness n] [--max-queue n] [--max-queue-bytes n]
                   [--max-total-queue-bytes n] [--max-unknown-services n] [--max-message-size n] [--request-expiry ms]
                   [--durable dir [--sync always|batch|none]] [--curve path [--allow file]]

Runs a broker in the foreground until SIGINT or SIGTERM, one line per worker joining or leaving.

  -h, --help              show this text
  --bind                  endpoint to bind (default tcp://127.0.0.1:5555); repeat for more
  --heartbeat             heartbeat interval in ms (default 2500); zrpc workers follow it, other MDP workers must match
  --liveness              missed heartbeats before a worker is dead (default 3)
  --max-queue             requests queued per service before RESOURCE_EXHAUSTED (default 10000)
  --max-queue-bytes       bytes queued per service before RESOURCE_EXHAUSTED (default 67108864, 64 MiB)
  --max-total-queue-bytes bytes queued for all services before RESOURCE_EXHAUSTED (default 268435456, 256 MiB)
  --max-unknown-services  service names waiting with no worker before UNAVAILABLE at once (default 1000)
  --max-message-size      largest message accepted, in bytes (default 4194304, 4 MiB; at least 65536)
  --request-expiry        ms a request waits for a service with no worker before UNAVAILABLE (default heartbeat x liveness)
  --durable               keep every accepted call on disk in this directory; a broker started again on it goes on where it stopped
  --sync                  with --durable, when a write counts as done: always (fsync, default), batch (fsync every 10 ms), none (OS cache: survives a crash of the broker, not of the machine)
  --curve                 CURVE with the key pair that zrpc keygen --out path wrote (path.key and path.pub)
  --allow                 with --curve, a file of client and worker public keys let in, one a line (read again when it changes)`

/** What the broker command needs from its surroundings; tests pass their own. */
export interface BrokerCliIo {
  /** What the broker reports while it runs, and the usage asked for with --help (stdout). */
  readonly print: (line: string) => void
  /** Usage and bind errors (stderr), so a script reading stdout never mistakes them for output. */
  readonly error: (line: string) => void
  /** Resolves when the broker should stop (default: SIGINT or SIGTERM). */
  readonly stopped: Promise<string>
}

/**
 * Runs `zrpc broker` with its arguments; resolves with the exit code once shut down: 0 after a
 * signal or `--help`, 1 if it cannot bind, 2 for bad arguments.
 */
export async function runBroker(argv: readonly string[], io: BrokerCliIo = processIo()): Promise<number> {
  let values
  try {
    ;({ values } = parseArgs({
      args: [...argv],
      options: {
        help: { type: 'boolean', short: 'h' },
        bind: { type: 'string', multiple: true },
        heartbeat: { type: 'string' },
        liveness: { type: 'string' },
        'max-queue': { type: 'string' },
        'max-queue-bytes': { type: 'string' },
        'max-total-queue-bytes': { type: 'string' },
        'max-unknown-services': { type: 'string' },
        'max-message-size': { type: 'string' },
        'request-expiry': { type: 'string' },
        durable: { type: 'string' },
        sync: { type: 'string' },
        curve: { type: 'string' },
        allow: { type: 'string' },
      },
      strict: true,
    }))
  } catch (err) {
    io.error(`zrpc broker: ${(err as Error).message}\n${BROKER_USAGE}`)
    return 2
  }
  if (values.help === true) {
    io.print(BROKER_USAGE)
    return 0
  }
  const numbers: Record<string, number | undefined> = {}
  const names = ['heartbeat', 'liveness', 'max-queue', 'max-queue-bytes', 'max-total-queue-bytes', 'max-unknown-services', 'max-message-size', 'request-expiry'] as const
  for (const name of names) {
    const text = values[name]
    if (text === undefined) continue
    const n = Number(text)
    if (!(Number.isSafeInteger(n) && n >= (name === 'request-expiry' ? 0 : 1))) {
      io.error(`zrpc broker: --${name} must be a ${name === 'request-expiry' ? 'non-negative' : 'positive'} integer, got ${JSON.stringify(text)}`)
      return 2
    }
    numbers[name] = n
  }
  if (numbers['max-message-size'] !== undefined && numbers['max-message-size'] < MIN_MESSAGE_SIZE) {
    io.error(`zrpc broker: --max-message-size must be at least ${MIN_MESSAGE_SIZE} (the protocol's cap on joined frames), got ${numbers['max-message-size']}`)
    return 2
  }
  const sync = values.sync
  if (sync !== undefined && (values.durable === undefined || !['always', 'batch', 'none'].includes(sync))) {
    io.error(`zrpc broker: --sync takes always, batch or none, with --durable; got ${JSON.stringify(sync)}${values.durable === undefined ? ' without --durable' : ''}`)
    return 2
  }
  if (values.allow !== undefined && values.curve === undefined) {
    io.error('zrpc broker: --allow needs --curve (the broker key pair)')
    return 2
  }
  let curve: { publicKey: string; secretKey: string; allow?: { file: string } } | undefined
  if (values.curve !== undefined) {
    try {
      const read = (file: string): string => readFileSync(file, 'utf8').trim()
      curve = { publicKey: read(`${values.curve}.pub`), secretKey: read(`${values.curve}.key`), ...(values.allow !== undefined && { allow: { file: values.allow } }) }
    } catch (err) {
      io.error(`zrpc broker: cannot read the key pair ${values.curve}.key / .pub: ${(err as Error).message}`)
      return 2
    }
  }
  // Loaded only now: the broker brings in the RPC server and its TypeBox compiler, a quarter second
  // of start-up that --help and a mistyped option should not wait for.
  const { Broker } = await import('../broker/broker.js')
  let broker: InstanceType<typeof Broker>
  try {
    broker = new Broker({
      ...(numbers['heartbeat'] !== undefined && { heartbeatMs: numbers['heartbeat'] }),
      ...(numbers['liveness'] !== undefined && { liveness: numbers['liveness'] }),
      ...(numbers['max-queue'] !== undefined && { maxQueuePerService: numbers['max-queue'] }),
      ...(numbers['max-queue-bytes'] !== undefined && { maxQueuedBytesPerService: numbers['max-queue-bytes'] }),
      ...(numbers['max-total-queue-bytes'] !== undefined && { maxQueuedBytes: numbers['max-total-queue-bytes'] }),
      ...(numbers['max-unknown-services'] !== undefined && { maxUnknownServices: numbers['max-unknown-services'] }),
      ...(numbers['max-message-size'] !== undefined && { maxMessageSize: numbers['max-message-size'] }),
      ...(numbers['request-expiry'] !== undefined && { requestExpiryMs: numbers['request-expiry'] }),
      ...(values.durable !== undefined && { durable: { dir: values.durable, ...(sync !== undefined && { sync: sync as 'always' | 'batch' | 'none' }) } }),
      ...(curve !== undefined && { curve, onRefused: (key: string, address: string) => io.print(`refused ${address}: key ${key} is not allowed`) }),
    })
  } catch (err) {
    io.error(`zrpc broker: ${(err as Error).message}`)
    return 2
  }
  broker.onWorkerEvent((e) => {
    if (e.service === 'zrpc.broker') return
    io.print(e.kind === 'joined' ? `worker ${e.identity} joined ${e.service}` : `worker ${e.identity} left ${e.service} (${e.reason ?? 'gone'})`)
  })
  try {
    const endpoints = await broker.bind(values.bind ?? ['tcp://127.0.0.1:5555'])
    const durable = broker.stats().durable
    io.print(`broker listening on ${endpoints.join(', ')}${durable === undefined ? '' : ` (durable in ${values.durable}: ${durable.calls} calls read back)`}`)
  } catch (err) {
    await broker.close()
    io.error(`zrpc broker: cannot bind: ${(err as Error).message}`)
    return 1
  }
  const signal = await io.stopped
  io.print(`${signal}: shutting down`)
  await broker.close()
  io.print('broker closed')
  return 0
}

function processIo(): BrokerCliIo {
  return {
    print: (line) => process.stdout.write(`${line}\n`),
    error: (line) => process.stderr.write(`${line}\n`),
    stopped: new Promise((resolve) => {
      const stop = (signal: NodeJS.Signals): void => {
        process.off('SIGINT', stop)
        process.off('SIGTERM', stop)
        resolve(signal)
      }
      process.on('SIGINT', stop)
      process.on('SIGTERM', stop)
    }),
  }
}
