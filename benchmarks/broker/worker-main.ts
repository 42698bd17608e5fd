/**
 * A worker process for the broker bench. argv: <mode> <endpoint> [heartbeatMs] [concurrency] [delayMs]
 *   zrpc    an RpcServer attached to a Broker at <endpoint> (one worker taking `concurrency` requests at once, default 1;
 *           each call waits `delayMs` first, default 0, standing in for I/O)
 *   lb      a raw lbbroker echo worker on the backend <endpoint>
 *   credit  a raw-credit echo worker on the backend <endpoint>, announcing `concurrency` credits
 *           (default 32; raw-credit.ts)
 *   direct  an RpcServer bound to <endpoint> (a bind address), for the direct baseline
 * In the zrpc and direct modes the server also implements Echo.items, a server stream of `count`
 * strings of `size` 'x' (one string built per size, yielded again and again), for the stream bench.
 * Reports `{ endpoint }` over IPC once serving; exits on 'stop' or when the parent goes.
 */
import { LoadBalancingWorker } from '../../patterns/lbbroker.js'
import { RpcServer } from '../../lib/index.js'
import { DEFAULT_CREDITS, runRawCreditWorker } from './raw-credit.js'
import { Echo } from './echo.js'

const [mode, endpoint, heartbeat, concurrencyArg, delayArg] = process.argv.slice(2)
const heartbeatMs = Number(heartbeat ?? 2500)
const concurrency = Number(concurrencyArg ?? (mode === 'credit' ? DEFAULT_CREDITS : 1))
const delayMs = Number(delayArg ?? 0)
const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const payloads = new Map<number, string>()
/** The stream item of `size` characters, built once per size. */
function payload(size: number): string {
  let item = payloads.get(size)
  if (item === undefined) payloads.set(size, (item = 'x'.repeat(size)))
  return item
}

async function start(): Promise<{ endpoint: string; stop: () => Promise<void> }> {
  if (mode === 'lb') {
    const worker = new LoadBalancingWorker((body) => body)
    const running = worker.run(endpoint!)
    return { endpoint: endpoint!, stop: async () => (worker.close(), await running) }
  }
  if (mode === 'credit') {
    const worker = runRawCreditWorker(endpoint!, concurrency)
    return { endpoint: endpoint!, stop: () => worker.stop() }
  }
  const server = new RpcServer().implement(Echo, {
    echo: async ({ data }) => (delayMs > 0 ? (await pause(delayMs), data) : data),
    echoIdempotent: async ({ data }) => (delayMs > 0 ? (await pause(delayMs), data) : data),
    async *items({ count, size }) {
      const item = payload(size)
      for (let i = 0; i < count; i++) yield item
    },
  })
  if (mode === 'zrpc') {
    await server.connectBroker(endpoint!, { heartbeatMs, concurrency })
    return { endpoint: endpoint!, stop: () => server.close() }
  }
  if (mode === 'direct') {
    const [bound] = await server.bind(endpoint!)
    return { endpoint: bound!, stop: () => server.close() }
  }
  throw new Error(`unknown mode ${String(mode)}`)
}

start().then(
  ({ endpoint: ready, stop }) => {
    const quit = (): void => void stop().then(() => process.exit(0))
    process.on('message', (m) => m === 'stop' && quit())
    process.on('disconnect', quit)
    process.send?.({ endpoint: ready })
  },
  (err: unknown) => {
    process.send?.({ error: String(err) })
    process.exit(1)
  },
)
