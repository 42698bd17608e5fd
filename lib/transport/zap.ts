/**
 * The process's ZAP handler (ZeroMQ RFC 27): libzmq asks it, over `inproc://zeromq.zap.01`, whether to
 * let each CURVE client in. One handler serves every zrpc socket of the process; each binding socket
 * with an allow list registers it under a ZAP domain of its own.
 *
 * ```
 *   libzmq ─► [ '1.0', request id, domain, address, identity, 'CURVE', client key (32 bytes) ]
 *          ◄─ [ '1.0', request id, '200' | '400', text, user id, metadata ]
 * ```
 * A domain nobody registered (a CURVE socket without an allow list) is answered 200: any client that
 * knows the server's key gets in, as without a handler. The handler's socket closes when the last
 * domain is unregistered, so it keeps no process alive.
 */
import { readFileSync, watch, type FSWatcher } from 'node:fs'
import { Router } from 'zeromq'
import { isZ85Key, z85Encode } from './curve.js'

const ZAP_ENDPOINT = 'inproc://zeromq.zap.01'
const ZAP_VERSION = '1.0'
/** How long an allow file must be quiet after a change before it is read again. */
const ALLOW_FILE_SETTLE_MS = 100

/** What one domain's allow list says and counts. */
export interface ZapStats {
  accepted: number
  refused: number
  /** The last refused client keys (Z85), newest last, at most 16. */
  readonly lastRefused: string[]
  /** Keys in the allow list now. */
  allowed: number
  /** Times the allow file was read again after a change; and why it last could not be, if it could not. */
  reloads: number
  reloadError: string | undefined
}

interface Domain {
  allowed: Set<string>
  readonly stats: ZapStats
  readonly onRefused: ((key: string, address: string) => void) | undefined
}

const domains = new Map<string, Domain>()
let handler: { socket: Router; done: Promise<void> } | undefined
let lastDomain = 0

/** A ZAP domain name no other socket of this process uses; register its allow list before the socket binds. */
export function newZapDomain(): string {
  return `zrpc-${process.pid}-${++lastDomain}`
}

/**
 * Registers an allow list (keys, or a file of keys) under `domain` and makes sure the handler runs.
 * Returns its stats, and a function that unregisters it.
 *
 * @example
 * const domain = newZapDomain()   // the socket's zapDomain option
 * const zap = await registerAllowList(domain, ['rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7'])
 */
export async function registerAllowList(
  domain: string,
  allow: readonly string[] | { readonly file: string },
  onRefused?: (key: string, address: string) => void,
): Promise<{ stats: ZapStats; unregister: () => void }> {
  const stats: ZapStats = { accepted: 0, refused: 0, lastRefused: [], allowed: 0, reloads: 0, reloadError: undefined }
  const entry: Domain = { allowed: new Set(), stats, onRefused }
  let watcher: FSWatcher | undefined
  if (Array.isArray(allow)) entry.allowed = new Set(allow as readonly string[])
  else {
    const file = (allow as { file: string }).file
    entry.allowed = readAllowFile(file) // throws at start-up: a missing or bad file is a configuration error
    // Read again on change, once the writes of a moment are done (an editor or writeFile truncates
    // first); a bad file keeps the last good list, and says why in the stats.
    let pending: NodeJS.Timeout | undefined
    const reload = (): void => {
      pending = undefined
      try {
        entry.allowed = readAllowFile(file)
        stats.allowed = entry.allowed.size
        stats.reloads++
        stats.reloadError = undefined
      } catch (err) {
        stats.reloadError = (err as Error).message
      }
    }
    watcher = watch(file, { persistent: false }, () => {
      pending ??= setTimeout(reload, ALLOW_FILE_SETTLE_MS).unref()
    })
  }
  stats.allowed = entry.allowed.size
  domains.set(domain, entry)
  await startHandler()
  return {
    stats,
    unregister: () => {
      watcher?.close()
      domains.delete(domain)
      if (domains.size === 0) stopHandler()
    },
  }
}

/**
 * The keys of an allow file: one Z85 key a line; blank lines, lines starting with `#`, and a `#`
 * comment after whitespace are ignored (`#` is also a Z85 digit, so only whitespace starts a comment).
 */
export function readAllowFile(file: string): Set<string> {
  const keys = new Set<string>()
  const lines = readFileSync(file, 'utf8').split('\n')
  lines.forEach((raw, i) => {
    const line = raw.trim().startsWith('#') ? '' : raw.replace(/\s#.*$/, '').trim()
    if (line === '') return
    if (!isZ85Key(line)) throw new TypeError(`${file}:${i + 1}: not a 40-character Z85 public key`)
    keys.add(line)
  })
  return keys
}

let starting: Promise<void> | undefined
let stopped: Promise<void> = Promise.resolve()

async function startHandler(): Promise<void> {
  if (handler !== undefined) return
  starting ??= (async () => {
    // A handler closed a moment ago may still hold the inproc name: wait for its loop, then retry briefly.
    await stopped
    for (let attempt = 0; ; attempt++) {
      const socket = new Router({ linger: 0 })
      try {
        await socket.bind(ZAP_ENDPOINT)
        handler = { socket, done: serve(socket) }
        return
      } catch (err) {
        socket.close()
        if (attempt >= 50 || (err as { code?: string }).code !== 'EADDRINUSE') throw err
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
    }
  })().finally(() => (starting = undefined))
  await starting
}

function stopHandler(): void {
  if (handler === undefined) return
  handler.socket.close()
  stopped = handler.done
  handler = undefined
}

async function serve(socket: Router): Promise<void> {
  try {
    for await (const [id, empty, version, requestId, domainFrame, address, , mechanism, key] of socket) {
      const domain = domainFrame?.toString() ?? ''
      const entry = domains.get(domain)
      let ok = true
      let text = 'OK'
      if (entry !== undefined) {
        const z85 = mechanism?.toString() === 'CURVE' && key?.length === 32 ? z85Encode(key) : undefined
        ok = z85 !== undefined && entry.allowed.has(z85)
        if (ok) entry.stats.accepted++
        else {
          text = 'client key not allowed'
          entry.stats.refused++
          entry.stats.lastRefused.push(z85 ?? '(no CURVE key)')
          if (entry.stats.lastRefused.length > 16) entry.stats.lastRefused.shift()
          entry.onRefused?.(z85 ?? '(no CURVE key)', address?.toString() ?? '')
        }
      }
      if (version?.toString() !== ZAP_VERSION) ok = false
      await socket.send([id!, empty!, Buffer.from(ZAP_VERSION), requestId ?? Buffer.alloc(0), Buffer.from(ok ? '200' : '400'), Buffer.from(text), Buffer.alloc(0), Buffer.alloc(0)])
    }
  } catch {
    // closed
  }
}
