/**
 * A raw ROUTER that plays a server (or a broker) for client tests: it hands each message to the
 * test, which answers with whatever bytes it likes, well-formed or not.
 */
import { connect } from 'node:net'
import { Router } from 'zeromq'
import { Kind, parseFrame, type RequestEnvelope } from '../../lib/codec/envelope.js'

/** What a raw server does with one message: `from` is the client's routing id, `frames` the rest. */
export type RawHandler = (from: Buffer, frames: Buffer[], peer: RawServer) => void | Promise<void>

export class RawServer {
  received = 0
  private loop: Promise<void> = Promise.resolve()

  private constructor(
    readonly router: Router,
    readonly endpoint: string,
  ) {}

  /** Binds `address` and hands every message to `handler` (which may be replaced later via `handle`). */
  static async start(address: string, handler: RawHandler, options: { maxMessageSize?: number } = {}): Promise<RawServer> {
    const router = new Router({ linger: 0, ...(options.maxMessageSize === undefined ? {} : { maxMessageSize: options.maxMessageSize }) })
    await router.bind(address)
    const peer = new RawServer(router, router.lastEndpoint ?? address)
    peer.handler = handler
    peer.loop = peer.run()
    return peer
  }

  handler: RawHandler = () => {}

  /** Sends `[from, ...frames]`, ignoring a peer that is gone. */
  async send(from: Buffer, ...frames: Buffer[]): Promise<void> {
    try {
      await this.router.send([from, ...frames])
    } catch {
      // The client may have closed: a raw test peer does not care.
    }
  }

  async close(): Promise<void> {
    this.router.close()
    await this.loop
  }

  private async run(): Promise<void> {
    try {
      for await (const [from, ...frames] of this.router) {
        this.received++
        await this.handler(from!, frames, this)
      }
    } catch {
      // closed
    }
  }
}

/** The REQUEST envelopes in a zrpc frame. */
export function requestsIn(frame: Buffer | undefined): RequestEnvelope[] {
  if (frame === undefined) return []
  return parseFrame(frame).filter((e): e is RequestEnvelope => e.kind === Kind.Request)
}

/** A TCP endpoint on loopback where nothing listens (it was bound a moment ago, then closed). */
export async function deadEndpoint(): Promise<string> {
  const probe = new Router({ linger: 0 })
  await probe.bind('tcp://127.0.0.1:*')
  const endpoint = probe.lastEndpoint!
  probe.close()
  // libzmq closes the listener on its I/O thread, after close() returns: until then a client can
  // still connect to it, and then lose that connection. Return once the port refuses connections.
  const port = Number(endpoint.slice(endpoint.lastIndexOf(':') + 1))
  for (let attempt = 0; attempt < 100 && (await accepts(port)); attempt++) await new Promise((resolve) => setTimeout(resolve, 10))
  return endpoint
}

/** Whether something accepts a TCP connection on 127.0.0.1:`port` now. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}
