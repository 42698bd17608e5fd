/**
 * The echo systems compared by rpc.bench.ts, client and server side of each.
 *
 * - raw:  zeromq.js DEALER -> ROUTER, one message per call, no codec (rpc/system-raw.ts).
 * - raw-coalesced: the same sockets with the calls of one event-loop turn packed into one frame, no
 *         codec: the ceiling (rpc/system-raw-coalesced.ts).
 * - zrpc-nocoalesce / zrpc: an RpcServer and an RpcClient with `coalesce` off / on (on is the default),
 *         both ends set alike. The payload is a string of N ASCII characters (N bytes), in params
 *         `{ data }`, and the result is `{ data }` back: TypeBox 1.x has no Uint8Array schema.
 * - grpc: @grpc/grpc-js unary Echo(EchoRequest{bytes payload}) on one channel, insecure, proto-loader,
 *         default options.
 * - moleculer: two Moleculer 0.14 brokers over its TCP transporter, loopback only, discovery off
 *         (rpc/system-moleculer.ts).
 * Every client checks that the reply has the size that was sent; a wrong size is a failed call.
 * zrpc, gRPC and Moleculer are imported on first use, so a raw server process starts without them
 * (importing zrpc costs about a second of start-up here, most of it typebox/compile).
 */
import { fileURLToPath } from 'node:url'
import { connectRawClient, startRawServer } from './system-raw.js'
import { connectRawCoalescedClient, startRawCoalescedServer } from './system-raw-coalesced.js'
import { connectMoleculerClient, startMoleculerServer } from './system-moleculer.js'
import type * as Grpc from '@grpc/grpc-js'

export const SYSTEMS = ['raw', 'raw-coalesced', 'zrpc-nocoalesce', 'zrpc', 'grpc', 'moleculer'] as const
export type SystemId = (typeof SYSTEMS)[number]

export const SYSTEM_LABELS: Record<SystemId, string> = {
  raw: 'zeromq.js raw Dealer->Router',
  'raw-coalesced': 'zeromq.js raw, coalesced per turn (ceiling)',
  'zrpc-nocoalesce': 'zrpc, coalesce off',
  zrpc: 'zrpc, coalesce on (default)',
  grpc: '@grpc/grpc-js unary',
  moleculer: 'Moleculer 0.14, TCP transporter',
}

export function isSystemId(s: string): s is SystemId {
  return (SYSTEMS as readonly string[]).includes(s)
}

/** The bench contract: echo a string of N bytes. */
async function loadZrpc() {
  const [{ Type }, zrpc] = await Promise.all([import('typebox'), import('../../lib/index.js')])
  const Echo = zrpc.defineService('bench', {
    echo: { params: Type.Object({ data: Type.String() }), result: Type.Object({ data: Type.String() }) },
  })
  return { ...zrpc, Echo }
}

/** A running echo server. */
export interface EchoServer {
  readonly endpoint: string
  close(): Promise<void>
}

/** A connected client: `caller(size)` gives a call function for that payload size. */
export interface EchoClient {
  caller(size: number): () => Promise<void>
  close(): Promise<void>
  /** What the client knows of its connection, for the error when a phase stalls. */
  describe?(): string
}

// The .proto sits next to the sources; compiled code runs from dist/benchmarks/rpc/.
const PROTO = fileURLToPath(new URL('../../../benchmarks/echo.proto', import.meta.url))

// ---------------------------------------------------------------------------------------------
// zrpc

async function startZrpcServer(coalesce: boolean): Promise<EchoServer> {
  const { RpcServer, Echo } = await loadZrpc()
  const server = new RpcServer({ coalesce }).implement(Echo, { echo: ({ data }) => ({ data }) })
  const [endpoint] = await server.bind('tcp://127.0.0.1:*')
  return { endpoint: endpoint ?? '', close: () => server.close({ timeoutMs: 1000 }) }
}

async function connectZrpcClient(endpoint: string, coalesce: boolean): Promise<EchoClient> {
  const { RpcClient, Echo } = await loadZrpc()
  const client = new RpcClient({ connect: endpoint, coalesce, timeoutMs: 30_000 })
  const echo = client.service(Echo)
  return {
    caller(size) {
      const data = 'x'.repeat(size)
      return async () => {
        const reply = await echo.echo({ data })
        if (reply.data.length !== size) throw new Error(`reply of ${reply.data.length} bytes, sent ${size}`)
      }
    },
    close: () => client.close(),
    describe: () => {
      // zeromq.js's own view of the DEALER: a readable socket whose receive never fires is a missed wake-up.
      const raw = (client as unknown as { channels: Array<{ socket: { raw: { readable: boolean; writable: boolean } } }> }).channels[0]?.socket.raw
      return `${JSON.stringify(client.stats)} readable=${String(raw?.readable)} writable=${String(raw?.writable)}`
    },
  }
}

// ---------------------------------------------------------------------------------------------
// gRPC

interface EchoMessage {
  payload: Buffer
}
interface GrpcEchoClient extends Grpc.Client {
  Echo(request: EchoMessage, callback: (err: Grpc.ServiceError | null, reply?: EchoMessage) => void): Grpc.ClientUnaryCall
}
interface GrpcEchoPackage {
  zrpcbench: {
    Echo: (new (address: string, credentials: Grpc.ChannelCredentials) => GrpcEchoClient) & { service: Grpc.ServiceDefinition }
  }
}

async function loadGrpc(): Promise<{ grpc: typeof Grpc; pkg: GrpcEchoPackage }> {
  const [grpc, protoLoader] = await Promise.all([import('@grpc/grpc-js'), import('@grpc/proto-loader')])
  const definition = protoLoader.loadSync(PROTO, { keepCase: true, defaults: true })
  return { grpc, pkg: grpc.loadPackageDefinition(definition) as unknown as GrpcEchoPackage }
}

async function startGrpcServer(): Promise<EchoServer> {
  const { grpc, pkg } = await loadGrpc()
  const server = new grpc.Server()
  server.addService(pkg.zrpcbench.Echo.service, {
    Echo: (call: Grpc.ServerUnaryCall<EchoMessage, EchoMessage>, callback: Grpc.sendUnaryData<EchoMessage>) => {
      callback(null, { payload: call.request.payload })
    },
  })
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)))
  })
  return {
    endpoint: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown()
          resolve()
        }, 1000)
        server.tryShutdown(() => {
          clearTimeout(timer)
          resolve()
        })
      }),
  }
}

async function connectGrpcClient(endpoint: string): Promise<EchoClient> {
  const { grpc, pkg } = await loadGrpc()
  const client = new pkg.zrpcbench.Echo(endpoint, grpc.credentials.createInsecure())
  return {
    caller(size) {
      const request = { payload: Buffer.alloc(size, 0x78) }
      return () =>
        new Promise<void>((resolve, reject) => {
          client.Echo(request, (err, reply) => {
            if (err) reject(err)
            else if (reply?.payload.length !== size) reject(new Error(`reply of ${reply?.payload.length} bytes, sent ${size}`))
            else resolve()
          })
        })
    },
    close: async () => client.close(),
  }
}

// ---------------------------------------------------------------------------------------------

/** Starts the server side of `system` in this process, bound to 127.0.0.1 on a free port. */
export function startServer(system: SystemId): Promise<EchoServer> {
  switch (system) {
    case 'raw':
      return startRawServer()
    case 'raw-coalesced':
      return startRawCoalescedServer()
    case 'zrpc-nocoalesce':
      return startZrpcServer(false)
    case 'zrpc':
      return startZrpcServer(true)
    case 'grpc':
      return startGrpcServer()
    case 'moleculer':
      return startMoleculerServer()
  }
}

/** Connects the client side of `system` to a server's endpoint. */
export async function connectClient(system: SystemId, endpoint: string): Promise<EchoClient> {
  switch (system) {
    case 'raw':
      return connectRawClient(endpoint)
    case 'raw-coalesced':
      return connectRawCoalescedClient(endpoint)
    case 'zrpc-nocoalesce':
      return connectZrpcClient(endpoint, false)
    case 'zrpc':
      return connectZrpcClient(endpoint, true)
    case 'grpc':
      return connectGrpcClient(endpoint)
    case 'moleculer':
      return connectMoleculerClient(endpoint)
  }
}
