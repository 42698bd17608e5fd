/**
 * The four echo systems compared by rpc.bench.ts, client and server side of each.
 *
 * - raw:  zeromq.js DEALER -> ROUTER, one message per call: one frame of [u32 id LE][payload bytes];
 *         the server sends every message back unchanged. One send queue with one pump per socket,
 *         because zeromq.js allows a single pending send() (a second throws EBUSY synchronously).
 * - zrpc-nocoalesce / zrpc: an RpcServer and an RpcClient with `coalesce` off / on (on is the default),
 *         both ends set alike. The payload is a string of N ASCII characters (N bytes), in params
 *         `{ data }`, and the result is `{ data }` back: TypeBox 1.x has no Uint8Array schema.
 * - grpc: @grpc/grpc-js unary Echo(EchoRequest{bytes payload}) on one channel, insecure, proto-loader,
 *         default options.
 * Every client checks that the reply has the size that was sent; a wrong size is a failed call.
 * zrpc and gRPC are imported on first use, so a raw server process starts without loading them
 * (importing zrpc costs about a second of start-up here, most of it typebox/compile).
 */
import { fileURLToPath } from 'node:url'
import { Dealer, Router } from 'zeromq'
import type * as Grpc from '@grpc/grpc-js'

export const SYSTEMS = ['raw', 'zrpc-nocoalesce', 'zrpc', 'grpc'] as const
export type SystemId = (typeof SYSTEMS)[number]

export const SYSTEM_LABELS: Record<SystemId, string> = {
  raw: 'zeromq.js raw Dealer->Router',
  'zrpc-nocoalesce': 'zrpc, coalesce off',
  zrpc: 'zrpc, coalesce on (default)',
  grpc: '@grpc/grpc-js unary',
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
}

// The .proto sits next to the sources; compiled code runs from dist/benchmarks/rpc/.
const PROTO = fileURLToPath(new URL('../../../benchmarks/echo.proto', import.meta.url))

// ---------------------------------------------------------------------------------------------
// raw zeromq.js

/** One pump per socket: zeromq.js allows one pending send. */
class RawSendQueue {
  private queue: Array<Buffer | Buffer[]> = []
  private pumping = false
  constructor(private readonly socket: Dealer | Router) {}

  push(message: Buffer | Buffer[]): void {
    this.queue.push(message)
    if (!this.pumping) void this.pump()
  }

  private async pump(): Promise<void> {
    this.pumping = true
    try {
      while (this.queue.length > 0 && !this.socket.closed) {
        const batch = this.queue
        this.queue = []
        for (const message of batch) await this.socket.send(message)
      }
    } catch {
      // Only a closing socket rejects a send here; the calls are failed by close().
    } finally {
      this.pumping = false
      this.queue = []
    }
  }
}

async function startRawServer(): Promise<EchoServer> {
  const socket = new Router({ linger: 0, sendHighWaterMark: 100_000, receiveHighWaterMark: 100_000 })
  await socket.bind('tcp://127.0.0.1:*')
  const queue = new RawSendQueue(socket)
  const loop = (async () => {
    try {
      for await (const message of socket) queue.push(message)
    } catch {
      // close() rejects the pending receive
    }
  })()
  return {
    endpoint: socket.lastEndpoint ?? '',
    close: async () => {
      socket.close()
      await loop
    },
  }
}

function connectRawClient(endpoint: string): EchoClient {
  const socket = new Dealer({ linger: 0, sendHighWaterMark: 100_000, receiveHighWaterMark: 100_000 })
  socket.connect(endpoint)
  const queue = new RawSendQueue(socket)
  const pending = new Map<number, { size: number; resolve: () => void; reject: (err: Error) => void }>()
  let lastId = 0
  const loop = (async () => {
    try {
      for await (const [frame] of socket) {
        if (frame === undefined || frame.length < 4) continue
        const id = frame.readUInt32LE(0)
        const call = pending.get(id)
        if (call === undefined) continue
        pending.delete(id)
        if (frame.length === call.size + 4) call.resolve()
        else call.reject(new Error(`reply of ${frame.length - 4} bytes, sent ${call.size}`))
      }
    } catch {
      // close() rejects the pending receive
    }
  })()
  return {
    caller(size) {
      const payload = Buffer.alloc(size, 0x78)
      return () =>
        new Promise<void>((resolve, reject) => {
          lastId = (lastId + 1) >>> 0
          const message = Buffer.allocUnsafe(size + 4)
          message.writeUInt32LE(lastId, 0)
          payload.copy(message, 4)
          pending.set(lastId, { size, resolve, reject })
          queue.push(message)
        })
    },
    close: async () => {
      socket.close()
      for (const call of pending.values()) call.reject(new Error('client closed'))
      pending.clear()
      await loop
    },
  }
}

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
    case 'zrpc-nocoalesce':
      return startZrpcServer(false)
    case 'zrpc':
      return startZrpcServer(true)
    case 'grpc':
      return startGrpcServer()
  }
}

/** Connects the client side of `system` to a server's endpoint. */
export async function connectClient(system: SystemId, endpoint: string): Promise<EchoClient> {
  switch (system) {
    case 'raw':
      return connectRawClient(endpoint)
    case 'zrpc-nocoalesce':
      return connectZrpcClient(endpoint, false)
    case 'zrpc':
      return connectZrpcClient(endpoint, true)
    case 'grpc':
      return connectGrpcClient(endpoint)
  }
}
