/**
 * The moleculer system of rpc.bench.ts: two Moleculer 0.14 ServiceBrokers (server and client, in
 * separate processes) over its built-in TCP transporter, on loopback only.
 *
 * - No discovery: `udpDiscovery: false` (so no UDP socket, no multicast, no broadcast); the client is
 *   given the server as a static URL `127.0.0.1:<port>/<nodeID>`; the server learns the client from
 *   the client's gossip HELLO over that TCP connection.
 * - Loopback only, on both ends: 0.14's TcpReader listens with `{ port, exclusive }` and no host (every
 *   address) and has no option to change that, so {@link loopbackTcp} replaces the reader's listen()
 *   with one bound to 127.0.0.1, and answers 127.0.0.1 as every node's address (by default a node is
 *   reached at the hostname or the first IP its INFO packet announces).
 * - Logger off, JSON serializer (the default), one `echo.echo` action returning its `payload` param.
 *   The payload is a string of N ASCII bytes: the JSON serializer would turn a Buffer into an array.
 *
 * The endpoint reported to the client is `127.0.0.1:<port>/<server nodeID>`.
 */
import net from 'node:net'
import type * as Moleculer from 'moleculer'
import type { EchoClient, EchoServer } from './systems.js'

const HOST = '127.0.0.1'
const NAMESPACE = 'zrpc-bench'

/** The slice of moleculer 0.14's (untyped) TcpReader that the loopback listen() needs. */
interface TcpReader {
  opts: { port: number | null }
  server: net.Server | null
  connected: boolean
  listen(): Promise<number>
  onTcpClientConnected(socket: net.Socket): void
}

function listenOnLoopback(reader: TcpReader): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((socket) => reader.onTcpClientConnected(socket))
    server.once('error', reject)
    server.listen({ host: HOST, port: reader.opts.port ?? 0, exclusive: true }, () => {
      const address = server.address()
      reader.opts.port = typeof address === 'object' && address !== null ? address.port : null
      reader.connected = true
      resolve(reader.opts.port ?? 0)
    })
    reader.server = server
  })
}

/** A TCP transporter that listens on, and connects to, 127.0.0.1 only. */
function loopbackTcp(mol: typeof Moleculer, urls: string[]): Moleculer.Transporters.Base {
  class LoopbackTcp extends mol.Transporters.TCP {
    constructor(opts: Record<string, unknown>) {
      super(opts)
      // The base class creates its reader and calls listen() in one method (startTcpServer);
      // catch the reader as it is assigned and give it the loopback listen() first.
      let reader: TcpReader | null = null
      Object.defineProperty(this, 'reader', {
        configurable: true,
        enumerable: true,
        get: () => reader,
        set: (value: TcpReader | null) => {
          if (value !== null) value.listen = () => listenOnLoopback(value)
          reader = value
        },
      })
    }

    getNodeAddress(): string {
      return HOST
    }
  }
  return new LoopbackTcp({ udpDiscovery: false, udpBroadcast: false, udpMulticast: null, useHostname: false, gossipPeriod: 1, urls })
}

function newBroker(mol: typeof Moleculer, nodeID: string, transporter: Moleculer.Transporters.Base): Moleculer.ServiceBroker {
  return new mol.ServiceBroker({
    namespace: NAMESPACE,
    nodeID,
    logger: false,
    transporter,
    metrics: false,
    tracing: false,
  })
}

export async function startMoleculerServer(): Promise<EchoServer> {
  const mol = await import('moleculer')
  const nodeID = `bench-server-${process.pid}`
  const transporter = loopbackTcp(mol, [])
  const broker = newBroker(mol, nodeID, transporter)
  broker.createService({
    name: 'echo',
    actions: { echo: (ctx: Moleculer.Context<{ payload: string }>) => ctx.params.payload },
  })
  await broker.start()
  const { port } = (transporter as unknown as { opts: { port: number | null } }).opts
  if (port === null) throw new Error('moleculer: no TCP port after start')
  return { endpoint: `${HOST}:${port}/${nodeID}`, close: () => broker.stop() }
}

let clients = 0

export async function connectMoleculerClient(endpoint: string): Promise<EchoClient> {
  if (!endpoint.startsWith(`${HOST}:`)) throw new Error(`moleculer: endpoint ${endpoint} is not on ${HOST}`)
  const mol = await import('moleculer')
  const broker = newBroker(mol, `bench-client-${process.pid}-${++clients}`, loopbackTcp(mol, [endpoint]))
  await broker.start()
  // Polled every 20 ms rather than every 1 s: only shortens start-up.
  await broker.waitForServices('echo', 10_000, 20)
  return {
    caller(size) {
      const params = { payload: 'x'.repeat(size) }
      return async () => {
        const reply: unknown = await broker.call('echo.echo', params)
        if (typeof reply !== 'string' || reply.length !== size) {
          throw new Error(`reply of ${typeof reply === 'string' ? reply.length : typeof reply} bytes, sent ${size}`)
        }
      }
    },
    close: () => broker.stop(),
  }
}
