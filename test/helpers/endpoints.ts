/** Endpoints for tests that cannot collide: ephemeral TCP ports on loopback, per-process ipc and inproc names. */
import { tmpdir } from 'node:os'
import { join } from 'node:path'

let counter = 0

export const TRANSPORTS = ['tcp', 'ipc', 'inproc'] as const
export type Transport = (typeof TRANSPORTS)[number]

/** A bind address for the transport; bind it, then use the resolved endpoint to connect. */
export function bindAddress(transport: Transport): string {
  const name = `zrpc-test-${process.pid}-${++counter}`
  switch (transport) {
    case 'tcp':
      return 'tcp://127.0.0.1:*'
    case 'ipc':
      return `ipc://${join(tmpdir(), `${name}.sock`)}`
    case 'inproc':
      return `inproc://${name}`
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Resolves when `predicate` holds, polling; rejects after `timeoutMs`. */
export async function until(predicate: () => boolean, timeoutMs = 2000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

/** Awaits a promise expected to reject, and returns the rejection. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (err) {
    return err
  }
  throw new Error('expected the promise to reject, it resolved')
}
