/**
 * The raw-coalesced system of rpc.bench.ts: zeromq.js DEALER -> ROUTER with every call issued in one
 * event-loop turn packed into one frame, and no codec. It is the ceiling a zeromq.js RPC can reach on
 * this machine: what is left when the per-message cost of zeromq.js is paid once per batch.
 *
 *   one frame, either way (all integers u32 little-endian):
 *   +--------+---------+-----------------+--------+---------+-----------------+-----
 *   | id     | len     | payload         | id     | len     | payload         | ...
 *   | 4 B    | 4 B     | len bytes       | 4 B    | 4 B     | len bytes       |
 *   +--------+---------+-----------------+--------+---------+-----------------+-----
 *
 * The client collects the calls of one turn and flushes them in setImmediate as one frame. The
 * server walks each frame, "handles" every call on its own (echo: the payload back) and re-packs the
 * replies of that frame into one reply frame of the same layout; a frame whose lengths run past its
 * end is dropped. One send queue with one pump per socket, as the raw system.
 */
import { Dealer, Router } from 'zeromq'
import { RawSendQueue } from './system-raw.js'
import type { EchoClient, EchoServer } from './systems.js'

const HEADER = 8

/** Replies to one request frame: same layout, each payload passed through the echo "handler". */
function handleFrame(frame: Buffer): Buffer | undefined {
  const reply = Buffer.allocUnsafe(frame.length)
  let at = 0
  while (at < frame.length) {
    if (at + HEADER > frame.length) return undefined
    const id = frame.readUInt32LE(at)
    const len = frame.readUInt32LE(at + 4)
    const end = at + HEADER + len
    if (end > frame.length) return undefined
    reply.writeUInt32LE(id, at)
    reply.writeUInt32LE(len, at + 4)
    frame.copy(reply, at + HEADER, at + HEADER, end)
    at = end
  }
  return reply
}

export async function startRawCoalescedServer(): Promise<EchoServer> {
  const socket = new Router({ linger: 0, sendHighWaterMark: 100_000, receiveHighWaterMark: 100_000 })
  await socket.bind('tcp://127.0.0.1:*')
  const queue = new RawSendQueue(socket)
  const loop = (async () => {
    try {
      for await (const [identity, frame] of socket) {
        if (identity === undefined || frame === undefined) continue
        const reply = handleFrame(frame)
        if (reply !== undefined) queue.push([identity, reply])
      }
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

interface Pending {
  readonly size: number
  readonly resolve: () => void
  readonly reject: (err: Error) => void
}

export function connectRawCoalescedClient(endpoint: string): EchoClient {
  const socket = new Dealer({ linger: 0, sendHighWaterMark: 100_000, receiveHighWaterMark: 100_000 })
  socket.connect(endpoint)
  const queue = new RawSendQueue(socket)
  const pending = new Map<number, Pending>()
  let lastId = 0
  // The calls of this turn, waiting for the flush.
  let batchIds: number[] = []
  let batchPayloads: Buffer[] = []
  let batchBytes = 0
  let flushScheduled = false

  const flush = (): void => {
    flushScheduled = false
    const frame = Buffer.allocUnsafe(batchBytes)
    let at = 0
    for (let i = 0; i < batchIds.length; i++) {
      const payload = batchPayloads[i]!
      frame.writeUInt32LE(batchIds[i]!, at)
      frame.writeUInt32LE(payload.length, at + 4)
      payload.copy(frame, at + HEADER)
      at += HEADER + payload.length
    }
    batchIds = []
    batchPayloads = []
    batchBytes = 0
    queue.push(frame)
  }

  const settle = (id: number, len: number): void => {
    const call = pending.get(id)
    if (call === undefined) return
    pending.delete(id)
    if (len === call.size) call.resolve()
    else call.reject(new Error(`reply of ${len} bytes, sent ${call.size}`))
  }

  const loop = (async () => {
    try {
      for await (const [frame] of socket) {
        if (frame === undefined) continue
        let at = 0
        while (at + HEADER <= frame.length) {
          const len = frame.readUInt32LE(at + 4)
          if (at + HEADER + len > frame.length) break
          settle(frame.readUInt32LE(at), len)
          at += HEADER + len
        }
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
          pending.set(lastId, { size, resolve, reject })
          batchIds.push(lastId)
          batchPayloads.push(payload)
          batchBytes += HEADER + size
          if (!flushScheduled) {
            flushScheduled = true
            setImmediate(flush)
          }
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
