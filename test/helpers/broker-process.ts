/**
 * A broker in a process of its own, for tests that kill it: `fork(this, [bindAddress, durableDir?])`.
 * Reports `{ endpoint }` once bound; exits on 'stop' or when the parent goes.
 */
import { Broker } from '../../lib/index.js'

async function main(): Promise<void> {
  const [address = 'tcp://127.0.0.1:*', dir] = process.argv.slice(2)
  const broker = new Broker({ heartbeatMs: 200, liveness: 5, requestExpiryMs: 60_000, ...(dir !== undefined && { durable: { dir } }) })
  const [endpoint] = await broker.bind(address)
  process.send?.({ endpoint })
  const stop = (): void => void broker.close().then(() => process.exit(0))
  process.on('message', (message) => message === 'stop' && stop())
  process.on('disconnect', stop)
}

if (process.send !== undefined) {
  main().catch((err: unknown) => {
    process.send?.({ error: String(err) })
    process.exit(1)
  })
}
