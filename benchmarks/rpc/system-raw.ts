/**
 * The raw system of rpc.bench.ts: zeromq.js DEALER -> ROUTER, one message per call, no codec.
 *
 *   client -> server   one frame: [u32 id LE][payload bytes]
 *   server -> client   the same frame, unchanged
 *
 * {@link RawSendQueue} is the one send queue with one pump per socket that both raw systems use:
 * zeromq.js allows a single pending send() (a second throws EBUSY synchronously).
 */
import { Dealer, Router } from 'zeromq'
import type { EchoClient, EchoServer } from './systems.js'

/** One pump per socket: zeromq.js allows one pending send. */
export class RawSendQueue {
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

export async function startRawServer(): Promise<EchoServer> {
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

export function connectRawClient(endpoint: string): EchoClient {
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
