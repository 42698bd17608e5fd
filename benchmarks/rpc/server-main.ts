/**
 * Child-process entry of rpc.bench.ts: serves one echo system and reports its endpoint to the parent.
 *
 *   node dist/benchmarks/rpc/server-main.js --system=zrpc [--limit-ms=N]
 *
 * Parent -> child: 'stop'.  Child -> parent: { endpoint } once bound, { error } if it could not start.
 * The child exits when told to stop, when the parent goes away (IPC disconnect), or at its hard limit.
 */
import { isSystemId, startServer } from './systems.js'

const arg = (name: string): string | undefined => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)

const system = arg('system') ?? ''
const limitMs = Number(arg('limit-ms') ?? 600_000)

process.on('disconnect', () => process.exit(0))
setTimeout(() => {
  console.error(`E: echo server ${system} hit its hard limit of ${limitMs} ms`)
  process.exit(3)
}, limitMs).unref()

async function main(): Promise<void> {
  if (process.send === undefined) throw new Error('server-main must be started with child_process.fork')
  if (!isSystemId(system)) throw new Error(`unknown system ${JSON.stringify(system)}`)
  const server = await startServer(system)
  process.on('message', (message) => {
    if (message !== 'stop') return
    server
      .close()
      .catch((err: unknown) => console.error(`E: closing ${system}: ${String(err)}`))
      .finally(() => process.exit(0))
  })
  process.send({ endpoint: server.endpoint })
}

main().catch((err: unknown) => {
  process.send?.({ error: String(err) })
  process.exit(1)
})
