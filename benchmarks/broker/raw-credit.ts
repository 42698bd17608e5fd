/**
 * `raw-credit`: the broker bench's baseline for issue 8's broker aim. A small Node LRU broker on raw
 * zeromq.js, as the perf anchors measured it: each worker announces N credits (default 32) and the
 * broker hands it up to N requests at once; every reply returns one credit. Raw frames, no encoding,
 * one message per call on every hop, echo workers in their own processes.
 *
 *   client DEALER ──► frontend ROUTER ─ broker ─ backend ROUTER ◄── worker DEALER (one per process)
 *
 * Frames (the ROUTERs add and strip the first identity frame):
 *
 *   worker → backend   READY    ["READY", credits]              credits: decimal ASCII, e.g. "32"
 *   client → frontend  request  [id, body]                      id: 4 bytes, the client's own; body: raw bytes
 *   broker → worker    request  [worker][client, id, body]      client: the frontend's identity of the caller
 *   worker → broker    reply    [worker][client, id, body]      one credit back to [worker]
 *   broker → client    reply    [client][id, body]
 *
 * The credits are one LRU queue of worker identities, one entry per credit: a request takes the
 * oldest, a reply puts it back at the end. The frontend is read only while a credit is free (the
 * guide's lbbroker, with N slots per worker instead of one). Each socket has one writer, so the
 * one-pending-send rule of zeromq.js holds without a queue: the frontend loop alone sends to the
 * backend and the backend loop alone sends to the frontend.
 */
import { Dealer, Router } from 'zeromq'

export const DEFAULT_CREDITS = 32
const READY = 'READY'

/** The broker: two ROUTERs bound to 127.0.0.1, run until close(). */
export class RawCreditBroker {
  private readonly frontend = new Router()
  private readonly backend = new Router()
  private readonly credits: Buffer[] = []
  private creditReturned: (() => void) | undefined
  private running: Promise<unknown> | undefined
  /** Credits announced so far (all workers). */
  announced = 0

  /** Binds both sockets on 127.0.0.1 and starts routing; resolves with the two endpoints. */
  async bind(): Promise<{ frontend: string; backend: string }> {
    await this.frontend.bind('tcp://127.0.0.1:*')
    await this.backend.bind('tcp://127.0.0.1:*')
    this.running = Promise.all([this.routeRequests(), this.routeReplies()]).catch(() => undefined)
    return { frontend: this.frontend.lastEndpoint!, backend: this.backend.lastEndpoint! }
  }

  private async routeRequests(): Promise<void> {
    while (!this.frontend.closed) {
      while (this.credits.length === 0 && !this.frontend.closed) await new Promise<void>((resolve) => (this.creditReturned = resolve))
      const [client, id, body] = await this.frontend.receive()
      if (client === undefined || id === undefined || body === undefined) continue
      await this.backend.send([this.credits.shift()!, client, id, body])
    }
  }

  private async routeReplies(): Promise<void> {
    for await (const [worker, first, id, body] of this.backend) {
      if (worker === undefined || first === undefined || id === undefined) continue
      if (body === undefined) {
        if (first.toString() !== READY) continue
        const n = Number(id.toString())
        this.announced += n
        for (let i = 0; i < n; i++) this.credits.push(worker)
      } else {
        this.credits.push(worker)
        await this.frontend.send([first, id, body])
      }
      this.creditReturned?.()
      this.creditReturned = undefined
    }
  }

  async close(): Promise<void> {
    this.frontend.close()
    this.backend.close()
    this.creditReturned?.()
    await this.running
  }
}

/** An echo worker: one DEALER, announces `credits`, sends every request straight back. */
export function runRawCreditWorker(backend: string, credits = DEFAULT_CREDITS): { stop(): Promise<void> } {
  const socket = new Dealer({ linger: 0 })
  socket.connect(backend)
  const running = (async () => {
    await socket.send([READY, String(credits)])
    for await (const [client, id, body] of socket) {
      if (client !== undefined && id !== undefined && body !== undefined) await socket.send([client, id, body])
    }
  })().catch(() => undefined)
  return {
    async stop() {
      socket.close()
      await running
    },
  }
}

/** A caller: one DEALER shared by every caller of a phase, replies matched by a 4-byte id. */
export class RawCreditClient {
  private readonly socket = new Dealer({ linger: 0 })
  private readonly pending = new Map<number, (body: Buffer) => void>()
  private readonly outbox: Buffer[][] = []
  private sending = false
  private nextId = 0
  private readonly receiving: Promise<void>

  constructor(frontend: string) {
    this.socket.connect(frontend)
    this.receiving = (async () => {
      for await (const [id, body] of this.socket) {
        if (id === undefined || body === undefined || id.length !== 4) continue
        const key = id.readUInt32BE(0)
        const resolve = this.pending.get(key)
        this.pending.delete(key)
        resolve?.(body)
      }
    })().catch(() => undefined)
  }

  /** Sends `body` and resolves with the echoed bytes. */
  request(body: Buffer): Promise<Buffer> {
    const key = this.nextId++ >>> 0
    const id = Buffer.allocUnsafe(4)
    id.writeUInt32BE(key, 0)
    const reply = new Promise<Buffer>((resolve) => this.pending.set(key, resolve))
    this.outbox.push([id, body])
    if (!this.sending) void this.flush()
    return reply
  }

  private async flush(): Promise<void> {
    this.sending = true
    try {
      while (this.outbox.length > 0) await this.socket.send(this.outbox.shift()!)
    } catch {
      // closed while sending: the phase is over
    } finally {
      this.sending = false
    }
  }

  async close(): Promise<void> {
    this.socket.close()
    await this.receiving
  }
}
