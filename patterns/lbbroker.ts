/**
 * Load-balancing broker: the ZeroMQ guide's `lbbroker`, in TypeScript on zeromq.js v6.
 *
 * Workers pull work: each announces READY, the broker keeps a least-recently-used queue of idle
 * workers and hands every request to the worker that has been idle longest. While no worker is idle
 * the broker does not read the frontend at all, so requests wait in the clients' and the socket's
 * queues (backpressure) instead of in broker memory.
 *
 * ```
 *  client (REQ)                  broker                          worker (REQ)
 *  [body]        ─► frontend ROUTER  [client][][body]
 *                                    ─► backend ROUTER [worker][][client][][body]  ─► [client][][body]
 *                                                      [worker][][READY]           ◄─ [READY]
 *  [reply]       ◄─ [client][][reply] ◄────────────── [worker][][client][][reply]  ◄─ [client][][reply]
 * ```
 * `[]` is an empty delimiter frame. A DEALER client sends and receives the `[]` itself.
 *
 * Run the example: `node dist/patterns/lbbroker.js`.
 */
import { Request, Router } from 'zeromq'
import { pathToFileURL } from 'node:url'
import { randomBytes } from 'node:crypto'

/** Example size: clients, workers and requests per client when run as a program. */
const NBR_CLIENTS = 10
const NBR_WORKERS = 3
const REQUESTS_PER_CLIENT = 2
/** The single frame a worker sends to say it is idle for the first time. */
export const WORKER_READY = 'READY'

/** A line logger; `I:`/`W:`/`E:` prefixed lines. Off unless given. */
export type LogFn = (line: string) => void
/** Frames as a user writes them. */
export type Frames = Buffer | string | ReadonlyArray<Buffer | string>

function toFrames(body: Frames): Buffer[] {
  const list = typeof body === 'string' || Buffer.isBuffer(body) ? [body] : body
  return list.map((f) => (typeof f === 'string' ? Buffer.from(f) : f))
}

/**
 * The broker: frontend ROUTER for clients, backend ROUTER for workers, LRU queue of idle workers.
 *
 * Why: REQ/DEALER round-robin hands work to busy workers; pulling by READY gives each request to an
 * idle worker, so slow requests do not queue behind each other.
 *
 * @example
 * const broker = new LoadBalancingBroker()
 * const { frontend, backend } = await broker.bind('tcp://127.0.0.1:*', 'tcp://127.0.0.1:*')
 * // ... workers connect to backend, clients to frontend
 * await broker.close()
 */
export class LoadBalancingBroker {
  private readonly frontend = new Router({ linger: 0 })
  private readonly backend = new Router({ linger: 0 })
  private readonly idle: Buffer[] = []
  private wake: (() => void) | undefined
  private loops: Promise<void>[] = []
  private readonly log: LogFn | undefined
  /** Requests handed to a worker so far. */
  forwarded = 0

  constructor(opts: { log?: LogFn } = {}) {
    this.log = opts.log
  }

  /** Idle workers waiting in the LRU queue. */
  get idleWorkers(): number {
    return this.idle.length
  }

  /** Binds both sockets, starts the loops, and returns the resolved endpoints. */
  async bind(frontend: string, backend: string): Promise<{ frontend: string; backend: string }> {
    await this.frontend.bind(frontend)
    await this.backend.bind(backend)
    if (this.loops.length === 0) this.loops = [this.backendLoop(), this.frontendLoop()]
    return { frontend: this.frontend.lastEndpoint ?? frontend, backend: this.backend.lastEndpoint ?? backend }
  }

  /** Closes both sockets and waits for the loops to end. */
  async close(): Promise<void> {
    this.frontend.close()
    this.backend.close()
    this.wake?.()
    await Promise.all(this.loops)
  }

  private async backendLoop(): Promise<void> {
    try {
      for await (const [worker, empty, ...rest] of this.backend) {
        if (!worker || !empty || empty.length !== 0 || rest.length === 0) continue
        // Any message, READY or a reply, means this worker is idle again: last in the LRU queue.
        this.idle.push(worker)
        const wake = this.wake
        this.wake = undefined
        wake?.()
        const [client, delimiter, ...body] = rest
        if (rest.length === 1 && client?.toString() === WORKER_READY) {
          this.log?.(`I: worker ${worker.toString()} ready`)
          continue
        }
        if (!client || !delimiter || delimiter.length !== 0) continue
        await this.frontend.send([client, '', ...body])
      }
    } catch (err) {
      if (!this.backend.closed) this.log?.(`E: backend loop: ${String(err)}`)
    }
  }

  private async frontendLoop(): Promise<void> {
    try {
      while (!this.frontend.closed) {
        // No idle worker: leave the frontend unread so requests wait in the socket queues.
        if (this.idle.length === 0) {
          await new Promise<void>((resolve) => (this.wake = resolve))
          continue
        }
        const [client, delimiter, ...body] = await this.frontend.receive()
        if (!client || !delimiter || delimiter.length !== 0) continue
        const worker = this.idle.shift()
        if (!worker) continue // unreachable: only this loop takes workers
        this.forwarded++
        await this.backend.send([worker, '', client, '', ...body])
      }
    } catch (err) {
      if (!this.frontend.closed) this.log?.(`E: frontend loop: ${String(err)}`)
    }
  }
}

/**
 * A worker: REQ socket, READY once, then one request at a time through `handler`.
 *
 * Why: the REQ socket's lock-step is exactly "one request at a time"; each reply doubles as the
 * next READY.
 *
 * @example
 * const worker = new LoadBalancingWorker((body) => ['OK'], { routingId: 'worker-1' })
 * void worker.run(backendEndpoint)   // resolves when closed
 * worker.close()
 */
export class LoadBalancingWorker {
  private readonly socket: Request
  /** Requests handled so far. */
  handled = 0

  constructor(
    private readonly handler: (body: Buffer[]) => Frames | Promise<Frames>,
    opts: { routingId?: string } = {},
  ) {
    this.socket = new Request({ linger: 0, ...(opts.routingId === undefined ? {} : { routingId: opts.routingId }) })
  }

  /** Connects, sends READY and serves until `close()`. */
  async run(backend: string): Promise<void> {
    try {
      this.socket.connect(backend)
      await this.socket.send(WORKER_READY)
      for await (const [client, delimiter, ...body] of this.socket) {
        if (!client || !delimiter) continue
        const reply = toFrames(await this.handler(body))
        this.handled++
        await this.socket.send([client, '', ...reply])
      }
    } catch (err) {
      if (!this.socket.closed) throw err
    }
  }

  /** Closes the socket; `run()` then resolves. */
  close(): void {
    this.socket.close()
  }
}

/**
 * A client: REQ socket, one request and its reply at a time.
 *
 * @example
 * const client = new LoadBalancingClient(frontendEndpoint)
 * const [reply] = await client.request('HELLO')
 * client.close()
 */
export class LoadBalancingClient {
  private readonly socket: Request

  constructor(frontend: string, opts: { routingId?: string } = {}) {
    this.socket = new Request({ linger: 0, ...(opts.routingId === undefined ? {} : { routingId: opts.routingId }) })
    this.socket.connect(frontend)
  }

  /** Sends one request and waits for its reply frames. */
  async request(body: Frames): Promise<Buffer[]> {
    await this.socket.send(toFrames(body))
    return this.socket.receive()
  }

  /** Closes the socket. */
  close(): void {
    this.socket.close()
  }
}

/** What `main()` did: request and reply counts, and replies handled by each worker. */
export interface LbSummary {
  requests: number
  replies: number
  perWorker: Record<string, number>
}

/**
 * Runs the guide's example in-process: a broker, `workers` workers and `clients` clients, each client
 * sending `requestsPerClient` "HELLO" requests; workers answer "OK".
 *
 * @example
 * const summary = await main({ clients: 4, workers: 2 })
 */
export async function main(
  opts: { clients?: number; workers?: number; requestsPerClient?: number; transport?: 'tcp' | 'inproc'; log?: LogFn } = {},
): Promise<LbSummary> {
  const { clients = NBR_CLIENTS, workers = NBR_WORKERS, requestsPerClient = REQUESTS_PER_CLIENT, log } = opts
  const tag = randomBytes(4).toString('hex')
  const [front, back] =
    opts.transport === 'inproc'
      ? [`inproc://lbbroker-front-${tag}`, `inproc://lbbroker-back-${tag}`]
      : ['tcp://127.0.0.1:*', 'tcp://127.0.0.1:*']
  const broker = new LoadBalancingBroker(log ? { log } : {})
  const endpoints = await broker.bind(front, back)
  log?.(`I: broker frontend ${endpoints.frontend}, backend ${endpoints.backend}`)

  const workerList = Array.from({ length: workers }, (_, i) => {
    const name = `worker-${i + 1}`
    return new LoadBalancingWorker(
      (body) => {
        log?.(`I: ${name}: ${body.map(String).join(' ')}`)
        return 'OK'
      },
      { routingId: name },
    )
  })
  const running = workerList.map((w) => w.run(endpoints.backend))
  // Let every worker say READY first, so the summary shows the load spread, not connect timing.
  while (broker.idleWorkers < workers) await new Promise((resolve) => setTimeout(resolve, 5))

  let replies = 0
  await Promise.all(
    Array.from({ length: clients }, async (_, i) => {
      const client = new LoadBalancingClient(endpoints.frontend, { routingId: `client-${i + 1}` })
      try {
        for (let n = 0; n < requestsPerClient; n++) {
          const [reply] = await client.request('HELLO')
          if (reply?.toString() === 'OK') replies++
          log?.(`I: client-${i + 1}: ${String(reply)}`)
        }
      } finally {
        client.close()
      }
    }),
  )

  await broker.close()
  for (const w of workerList) w.close()
  await Promise.all(running)
  const perWorker: Record<string, number> = {}
  workerList.forEach((w, i) => (perWorker[`worker-${i + 1}`] = w.handled))
  return { requests: clients * requestsPerClient, replies, perWorker }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main({ log: (line) => console.log(line) }).then(
    (summary) => console.log(`I: done: ${JSON.stringify(summary)}`),
    (err: unknown) => {
      console.error(`E: ${String(err)}`)
      process.exitCode = 1
    },
  )
}
