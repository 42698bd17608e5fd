/**
 * Forks a bench server process and tears it down reliably.
 *
 * The child reports `{ endpoint }` over IPC. Stopping sends 'stop', then kills it if it has not exited
 * in time; the child also exits by itself on IPC disconnect, so it never outlives the parent.
 */
import { fork, type ChildProcess } from 'node:child_process'

export interface ForkedServer {
  readonly endpoint: string
  readonly child: ChildProcess
  stop(): Promise<void>
}

const live = new Set<ChildProcess>()
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL')
})

/** Forks `modulePath` with `args` and waits (at most `startTimeoutMs`) for its endpoint. */
export async function forkServer(modulePath: string, args: string[], startTimeoutMs = 10_000): Promise<ForkedServer> {
  const child = fork(modulePath, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] })
  live.add(child)
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  void exited.then(() => live.delete(child))

  const endpoint = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server ${args.join(' ')} did not start within ${startTimeoutMs} ms`)), startTimeoutMs)
    child.once('message', (message: { endpoint?: string; error?: string }) => {
      clearTimeout(timer)
      if (typeof message.endpoint === 'string') resolve(message.endpoint)
      else reject(new Error(`server ${args.join(' ')} failed: ${message.error ?? 'no endpoint'}`))
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`server ${args.join(' ')} exited with ${String(code)} before it started`))
    })
  }).catch((err: unknown) => {
    child.kill('SIGKILL')
    throw err
  })

  return {
    endpoint,
    child,
    async stop(timeoutMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return
      if (child.connected) child.send('stop')
      let timer: NodeJS.Timeout | undefined
      await Promise.race([exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))])
      clearTimeout(timer)
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL')
        await exited
      }
    },
  }
}
