/**
 * Titanic (ZeroMQ RFC 9, 9/TSP): disconnected, disk-backed request-reply on top of Majordomo. The
 * client hands a request to Titanic, which stores it on disk and answers with a UUID; Titanic sends
 * it to the real service when that service is up, stores the reply, and the client fetches it later.
 * Client, Titanic, broker and worker need not be up at the same time (the guide's titanic.c and
 * ticlient.c).
 *
 * ```
 *  client (MDP)                        broker    Titanic (3 MDP workers)                dir/
 *  titanic.request [service] [body..]  ──►  ──►  write .tmp, fsync, rename ────────►  <uuid>.req
 *                  [200] [uuid]        ◄──  ◄──
 *  titanic.reply   [uuid]              ──►  ──►  .req there? .rep there? ◄──────────  <uuid>.rep
 *                  [200] [reply..] | [300] pending | [400] unknown
 *  titanic.close   [uuid]              ──►  ──►  delete .req, then .rep
 *                  [200] (also for an unknown uuid: idempotent)
 *
 *  dispatcher (inside Titanic, an MDP client), each .req without a .rep, oldest first:
 *    mmi.service [service] ──► broker: [200]? then  service [body..] ──► broker ──► worker
 *    reply [..] ◄── broker ◄── worker; write <uuid>.rep, fsync, rename: only now is it done
 *    no worker, or no reply in time: try again on the next pass (every retryMs)
 * ```
 * Status frames: 200 OK, 300 PENDING, 400 UNKNOWN (also for a UUID that is not 32 hex digits), 500
 * ERROR (here: a malformed body, or a disk error).
 *
 * Files (all in the directory given to {@link Titanic}): `<uuid>.req` holds [service, body..],
 * `<uuid>.rep` the reply frames. Each is written to `<name>.tmp`, fsynced, renamed, and the
 * directory fsynced, so the '200' of titanic.request means the request is on disk, and a request
 * counts as done only once its reply is. The reply file is the done mark: there is no queue file
 * (the reference's grows for ever); on start, every `.req` without a `.rep` is sent again, oldest
 * first. The `.req` is the record that a UUID exists: close deletes it first, and start removes a
 * `.rep` left without one. The file format is this file's own (frame count, then length-prefixed
 * frames), not the reference's `zmsg_save`, so the directory is not shared with the C Titanic.
 *
 * Limits: at-least-once. A request whose reply was lost (service too slow for `serviceTimeoutMs`,
 * worker died, Titanic stopped mid-call) is sent again, so services behind Titanic should be
 * idempotent. One request is in flight at a time, oldest first, as in the reference. One Titanic
 * per directory.
 *
 * Copy this file with the Majordomo files (`majordomo-protocol.ts`, `-broker.ts`, `-worker.ts`,
 * `-client.ts`). Run the example: `node dist/patterns/titanic.js`.
 */
import { randomUUID } from 'node:crypto'
import { mkdir, mkdtemp, open, readFile, readdir, rename, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { pathToFileURL } from 'node:url'
import { MajordomoBroker } from './majordomo-broker.js'
import { MajordomoClient } from './majordomo-client.js'
import { MajordomoWorker } from './majordomo-worker.js'
import { MMI_PREFIX, toFrames } from './majordomo-protocol.js'
import type { Frames, LogFn } from './majordomo-protocol.js'

/** The three services of 9/TSP. */
export const TITANIC_REQUEST = 'titanic.request'
export const TITANIC_REPLY = 'titanic.reply'
export const TITANIC_CLOSE = 'titanic.close'

/** Status codes of 9/TSP (the first frame of every answer). */
export const Status = { Ok: '200', Pending: '300', Unknown: '400', Error: '500' } as const
export type Status = (typeof Status)[keyof typeof Status]

/** Reference: the dispatcher makes a pass over the stored requests once a second. */
const RETRY_MS = 1000
/**
 * How long the dispatcher waits for a service's reply. The reference waits 1 s, one try; a service
 * slower than this never gets its reply stored and is asked again on every pass, so keep it above
 * the slowest service's honest response time (here the MDP client's 2.5 s).
 */
const SERVICE_TIMEOUT_MS = 2500
/** Example size, and how often the example client polls titanic.reply (ticlient: 100 ms). */
const NBR_REQUESTS = 3
const POLL_MS = 100
const MAX_POLLS = 100

/** UUIDs are 32 hex digits; the reference writes them upper case, the RFC allows either. */
const UUID = /^[0-9A-Fa-f]{32}$/
const OWN_FILE = /^([0-9A-F]{32})\.(req|rep)(\.tmp)?$/

/** What a Titanic service answered: the status code (the status frame's first three characters) and the frames after it. */
export interface TitanicAnswer {
  status: string
  body: Buffer[]
}

export interface TitanicOptions {
  /** Heartbeat interval of Titanic's three MDP workers, ms (default 2500). Must match the broker's. */
  heartbeatMs?: number
  /** Wait between dispatch passes while stored requests have no reply yet, ms (default 1000). */
  retryMs?: number
  /** How long the dispatcher waits for a service's reply before trying again on a later pass, ms (default 2500). */
  serviceTimeoutMs?: number
  /** Log lines (`I:`/`W:`/`E:`); off by default. */
  log?: LogFn
}

/** Counters since start. */
export interface TitanicStats {
  /** Requests stored by titanic.request. */
  stored: number
  /** Stored requests without a reply yet (recovered ones included). */
  pending: number
  /** Replies stored by the dispatcher. */
  replied: number
  /** Replies thrown away because the client closed the request while its service ran. */
  discarded: number
}

/**
 * The Titanic server: the services titanic.request, titanic.reply and titanic.close as three MDP
 * workers, and the dispatcher that sends stored requests to their services through the broker.
 *
 * Why: a request that must not be lost when the client, broker or worker goes away is stored before
 * it is acknowledged, and retried until its service answers, even across a restart of Titanic.
 *
 * @example
 * const titanic = new Titanic('/var/lib/app/titanic', { heartbeatMs: 2500 })
 * await titanic.start('tcp://127.0.0.1:5555')
 * // clients: titanicRequest(), titanicReply(), titanicClose()
 * await titanic.close()
 */
export class Titanic {
  /** UUIDs of stored requests without a reply, oldest first. */
  private readonly queue: string[] = []
  private readonly workers: MajordomoWorker[] = []
  private readonly serving: Promise<void>[] = []
  private client: MajordomoClient | undefined
  private dispatching: Promise<void> | undefined
  /** One chain per UUID: a close, a reply lookup and the store of a reply never interleave. */
  private readonly locks = new Map<string, Promise<unknown>>()
  private wakeUp: (() => void) | undefined
  private nudged = false
  private started = false
  private closed = false
  private readonly counters = { stored: 0, replied: 0, discarded: 0 }

  constructor(
    readonly dir: string,
    private readonly opts: TitanicOptions = {},
  ) {}

  /** Creates the directory if needed, picks up the requests stored before, and starts serving. */
  async start(brokerEndpoint: string): Promise<void> {
    if (this.started) throw new Error('Titanic already started')
    this.started = true
    await mkdir(this.dir, { recursive: true })
    const resumed = await this.recover()
    if (this.closed) return
    this.queue.push(...resumed)
    const log = this.opts.log
    if (resumed.length > 0) log?.(`I: titanic: ${resumed.length} stored request(s) without a reply, resuming`)
    const logOpt = log ? { log } : {}
    this.client = new MajordomoClient(brokerEndpoint, { timeoutMs: this.opts.serviceTimeoutMs ?? SERVICE_TIMEOUT_MS, retries: 1, ...logOpt })
    const workerOpts = { ...(this.opts.heartbeatMs === undefined ? {} : { heartbeatMs: this.opts.heartbeatMs }), ...logOpt }
    const services: [string, (body: Buffer[]) => Promise<Frames>][] = [
      [TITANIC_REQUEST, (body) => this.onRequest(body)],
      [TITANIC_REPLY, (body) => this.onReply(body)],
      [TITANIC_CLOSE, (body) => this.onClose(body)],
    ]
    for (const [service, handle] of services) {
      const worker = new MajordomoWorker(brokerEndpoint, service, workerOpts)
      this.workers.push(worker)
      this.serving.push(this.serve(worker, handle))
    }
    this.dispatching = this.dispatch(this.client)
  }

  /** Stops the services and the dispatcher; resolves once no file operation is left running. Stored requests stay on disk. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.nudge()
    this.client?.close()
    await Promise.all(this.workers.map((w) => w.close()))
    await Promise.all(this.serving)
    await this.dispatching
  }

  stats(): TitanicStats {
    return { ...this.counters, pending: this.queue.length }
  }

  private async serve(worker: MajordomoWorker, handle: (body: Buffer[]) => Promise<Frames>): Promise<void> {
    for await (const request of worker) {
      let reply: Frames
      try {
        reply = await handle(request.body)
      } catch (err) {
        // A disk error: 500, which tells the client to try again later.
        this.opts.log?.(`E: titanic: ${worker.service}: ${String(err)}`)
        reply = Status.Error
      }
      await request.reply(reply)
    }
  }

  /** titanic.request [service] [body..]: store, then ['200', uuid]. */
  private async onRequest(body: Buffer[]): Promise<Frames> {
    const [service, ...frames] = body
    // The RFC asks for 2 frames or more: a service name and a body.
    if (!service || service.length === 0 || frames.length === 0) {
      this.opts.log?.(`W: titanic: malformed titanic.request (${body.length} frames)`)
      return Status.Error
    }
    const uuid = randomUUID().replace(/-/g, '').toUpperCase()
    await writeDurably(this.dir, `${uuid}.req`, encodeFrames(body))
    this.counters.stored++
    this.queue.push(uuid)
    this.nudge()
    this.opts.log?.(`I: titanic: stored request ${uuid} for ${service.toString()}`)
    return [Status.Ok, uuid]
  }

  /** titanic.reply [uuid]: ['200', reply..], ['300'] while pending, ['400'] when unknown. */
  private async onReply(body: Buffer[]): Promise<Frames> {
    if (body.length !== 1) return Status.Error
    const uuid = normalizeUuid(body[0])
    if (!uuid) return Status.Unknown
    return this.locked(uuid, async () => {
      if (!(await exists(this.path(uuid, 'req')))) return Status.Unknown
      const reply = await readFrames(this.path(uuid, 'rep'))
      return reply ? [Status.Ok, ...reply] : Status.Pending
    })
  }

  /** titanic.close [uuid]: delete request and reply; ['200'] even for an unknown UUID (the RFC: idempotent). */
  private async onClose(body: Buffer[]): Promise<Frames> {
    if (body.length !== 1) return Status.Error
    const uuid = normalizeUuid(body[0])
    if (!uuid) return Status.Ok
    await this.locked(uuid, async () => {
      this.dequeue(uuid)
      // The .req first: without it the UUID is unknown, so a crash between the two leaves no visible reply.
      await rm(this.path(uuid, 'req'), { force: true })
      await rm(this.path(uuid, 'rep'), { force: true })
      await syncDir(this.dir)
    })
    this.opts.log?.(`I: titanic: closed ${uuid}`)
    return Status.Ok
  }

  /** The dispatcher: passes over the stored requests until closed, resting `retryMs` between passes that left some unanswered. */
  private async dispatch(client: MajordomoClient): Promise<void> {
    while (!this.closed) {
      // Services mmi.service said are missing, this pass: their other requests wait for the next.
      const missing = new Set<string>()
      for (const uuid of [...this.queue]) {
        if (this.closed) break
        if (!this.queue.includes(uuid)) continue // closed by its client meanwhile
        try {
          if (await this.deliver(client, uuid, missing)) this.dequeue(uuid)
        } catch (err) {
          // A disk error storing the reply (disk full...): the request stays queued and is tried again.
          this.opts.log?.(`E: titanic: ${uuid}: ${String(err)}`)
        }
      }
      await this.rest(this.queue.length > 0 ? (this.opts.retryMs ?? RETRY_MS) : undefined)
    }
  }

  /** Tries one stored request; true once it is done (reply stored, or the request closed). */
  private async deliver(client: MajordomoClient, uuid: string, missing: Set<string>): Promise<boolean> {
    let request: Buffer[] | null
    try {
      request = await readFrames(this.path(uuid, 'req'))
    } catch (err) {
      // A stored request that cannot be read: left on disk, out of the queue until a restart.
      this.opts.log?.(`E: titanic: ${uuid}: ${String(err)}`)
      return true
    }
    if (!request) return true // closed by its client
    const [serviceFrame, ...body] = request
    const service = serviceFrame?.toString() ?? ''
    if (missing.has(service)) return false
    // As the reference: ask the broker first, so a request is not left queued there for a service nobody serves.
    const mmi = await client.request(`${MMI_PREFIX}service`, service)
    if (mmi?.at(-1)?.toString() !== '200') {
      missing.add(service)
      return false
    }
    this.opts.log?.(`I: titanic: sending ${uuid} to ${service}`)
    const reply = await client.request(service, body)
    if (!reply) return false
    return this.locked(uuid, async () => {
      if (!(await exists(this.path(uuid, 'req')))) {
        this.counters.discarded++
        return true
      }
      // Durable before the request counts as done: a crash before this line means the request runs again.
      await writeDurably(this.dir, `${uuid}.rep`, encodeFrames(reply))
      this.counters.replied++
      this.opts.log?.(`I: titanic: stored reply for ${uuid}`)
      return true
    })
  }

  /** The stored requests without a reply, oldest first; clears what a crash left half done. Touches only its own file names. */
  private async recover(): Promise<string[]> {
    const names = new Set(await readdir(this.dir))
    const found: { uuid: string; at: number }[] = []
    for (const name of names) {
      const [, uuid, kind, tmp] = OWN_FILE.exec(name) ?? []
      if (!uuid) continue
      if (tmp) await rm(join(this.dir, name), { force: true }) // a write cut short
      else if (kind === 'rep' && !names.has(`${uuid}.req`)) await rm(join(this.dir, name), { force: true }) // a close cut short
      else if (kind === 'req' && !names.has(`${uuid}.rep`)) found.push({ uuid, at: (await stat(join(this.dir, name))).mtimeMs })
    }
    return found.sort((a, b) => a.at - b.at || (a.uuid < b.uuid ? -1 : 1)).map((f) => f.uuid)
  }

  private path(uuid: string, kind: 'req' | 'rep'): string {
    return join(this.dir, `${uuid}.${kind}`)
  }

  private dequeue(uuid: string): void {
    const at = this.queue.indexOf(uuid)
    if (at >= 0) this.queue.splice(at, 1)
  }

  private locked<T>(uuid: string, fn: () => Promise<T>): Promise<T> {
    const result = (this.locks.get(uuid) ?? Promise.resolve()).then(fn)
    const tail = result.catch(() => undefined)
    this.locks.set(uuid, tail)
    void tail.then(() => {
      if (this.locks.get(uuid) === tail) this.locks.delete(uuid)
    })
    return result
  }

  /** A new request (or close): start the next pass now. */
  private nudge(): void {
    this.nudged = true
    const wake = this.wakeUp
    this.wakeUp = undefined
    wake?.()
  }

  /** Waits `ms` (for ever if undefined) or until nudged; returns at once if nudged during the pass. */
  private async rest(ms: number | undefined): Promise<void> {
    if (!this.nudged && !this.closed) {
      await new Promise<void>((resolve) => {
        const timer = ms === undefined ? undefined : setTimeout(() => this.nudge(), ms)
        this.wakeUp = () => {
          clearTimeout(timer)
          resolve()
        }
      })
    }
    this.nudged = false
  }
}

/** Calls a Titanic service; null when nothing answered (the client's tries timed out, or it was closed). */
async function callTitanic(client: MajordomoClient, service: string, body: Frames): Promise<TitanicAnswer | null> {
  const reply = await client.request(service, body)
  const [status, ...rest] = reply ?? []
  // The RFC lets text follow the three digits ("200 OK"); only the digits count.
  return status ? { status: status.toString().slice(0, 3), body: rest } : null
}

/**
 * Asks Titanic to store a request for `service`; on '200' the body is [uuid].
 *
 * @example
 * const answer = await titanicRequest(client, 'echo', 'hello')
 * const uuid = answer?.status === Status.Ok ? String(answer.body[0]) : undefined
 */
export function titanicRequest(client: MajordomoClient, service: string, body: Frames): Promise<TitanicAnswer | null> {
  return callTitanic(client, TITANIC_REQUEST, [Buffer.from(service), ...toFrames(body)])
}

/** Asks for the reply to a stored request: '200' with the reply frames, '300' pending, '400' unknown. */
export function titanicReply(client: MajordomoClient, uuid: string): Promise<TitanicAnswer | null> {
  return callTitanic(client, TITANIC_REPLY, uuid)
}

/** Tells Titanic the reply is no longer needed: request and reply are deleted. '200', also for an unknown UUID. */
export function titanicClose(client: MajordomoClient, uuid: string): Promise<TitanicAnswer | null> {
  return callTitanic(client, TITANIC_CLOSE, uuid)
}

function normalizeUuid(frame: Buffer | undefined): string | undefined {
  const text = frame?.toString() ?? ''
  // Checked before it becomes part of a path: '../x' must not reach the file system.
  return UUID.test(text) ? text.toUpperCase() : undefined
}

/** File format: frame count, then each frame as its length and bytes (lengths u32 big-endian). */
function encodeFrames(frames: readonly Buffer[]): Buffer {
  const parts = [u32(frames.length)]
  for (const frame of frames) parts.push(u32(frame.length), frame)
  return Buffer.concat(parts)
}

function decodeFrames(data: Buffer): Buffer[] | undefined {
  if (data.length < 4) return undefined
  const count = data.readUInt32BE(0)
  const frames: Buffer[] = []
  let at = 4
  for (let i = 0; i < count; i++) {
    if (at + 4 > data.length) return undefined
    const length = data.readUInt32BE(at)
    at += 4
    if (at + length > data.length) return undefined
    frames.push(Buffer.from(data.subarray(at, at + length)))
    at += length
  }
  return at === data.length ? frames : undefined
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n)
  return b
}

/** Frames stored in `path`; null if there is no such file. Throws on a damaged file. */
async function readFrames(path: string): Promise<Buffer[] | null> {
  let data: Buffer
  try {
    data = await readFile(path)
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return null
    throw err
  }
  const frames = decodeFrames(data)
  if (!frames) throw new Error(`damaged file ${path}`)
  return frames
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return false
    throw err
  }
}

/** Writes a file so that after a crash it is either absent or complete: temp name, fsync, rename, fsync the directory. */
async function writeDurably(dir: string, name: string, data: Buffer): Promise<void> {
  const path = join(dir, name)
  const tmp = `${path}.tmp`
  const file = await open(tmp, 'w')
  try {
    await file.writeFile(data)
    await file.sync()
  } finally {
    await file.close()
  }
  await rename(tmp, path)
  await syncDir(dir)
}

/** A rename or delete survives a crash once the directory itself is fsynced. Some systems (Windows) cannot open a directory: nothing to do there. */
async function syncDir(dir: string): Promise<void> {
  const unsupported = new Set(['EISDIR', 'EPERM', 'EACCES', 'EINVAL', 'ENOTSUP'])
  let handle
  try {
    handle = await open(dir, 'r')
  } catch (err) {
    if (unsupported.has((err as { code?: string }).code ?? '')) return
    throw err
  }
  try {
    await handle.sync()
  } catch (err) {
    if (!unsupported.has((err as { code?: string }).code ?? '')) throw err
  } finally {
    await handle.close()
  }
}

/** What `main()` did. */
export interface TitanicSummary {
  requests: number
  /** titanic.reply answers while no echo worker existed yet ('300' each: stored, waiting). */
  before: string[]
  /** Echo replies fetched with '200' and the body sent. */
  replies: number
  /** titanic.reply answers after titanic.close ('400' each). */
  after: string[]
  /** Files left in Titanic's directory at the end. */
  filesLeft: number
}

/**
 * Runs the example in-process, as the guide's ticlient against titanic: a broker, Titanic, and a
 * client that sends `requests` echo requests through Titanic before any echo worker exists (they
 * wait on disk), then an echo worker starts; the client polls titanic.reply until '200' and closes
 * each request. `dir` defaults to a new temporary directory, removed at the end.
 *
 * @example
 * const summary = await main({ requests: 2, retryMs: 100 })
 */
export async function main(opts: { requests?: number; heartbeatMs?: number; retryMs?: number; dir?: string; log?: LogFn } = {}): Promise<TitanicSummary> {
  const { requests = NBR_REQUESTS, heartbeatMs = 250, retryMs = RETRY_MS, log } = opts
  const logOpt = log ? { log } : {}
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'titanic-')))
  const broker = new MajordomoBroker({ heartbeatMs, ...logOpt })
  const endpoint = await broker.bind('tcp://127.0.0.1:*')
  const titanic = new Titanic(dir, { heartbeatMs, retryMs, ...logOpt })
  await titanic.start(endpoint)
  const client = new MajordomoClient(endpoint, logOpt)
  let echo: MajordomoWorker | undefined
  let serving: Promise<void> | undefined
  try {
    // 1. Send the requests to Titanic: each is on disk once its UUID comes back.
    const sent: { text: string; uuid: string }[] = []
    for (let n = 0; n < requests; n++) {
      const text = `Hello world ${n}`
      const answer = await titanicRequest(client, 'echo', text)
      const uuid = answer?.status === Status.Ok ? answer.body[0]?.toString() : undefined
      if (uuid) sent.push({ text, uuid })
      log?.(`I: request UUID ${uuid ?? `none (${answer?.status ?? 'no reply'})`}`)
    }
    const before: string[] = []
    for (const { uuid } of sent) before.push((await titanicReply(client, uuid))?.status ?? 'no reply')

    // 2. The echo service comes up only now; Titanic's dispatcher finds it on its next pass.
    const worker = (echo = new MajordomoWorker(endpoint, 'echo', { heartbeatMs, ...logOpt }))
    serving = (async () => {
      for await (const request of worker) await request.reply(request.body)
    })()

    // 3. Poll for each reply, then close the request.
    let replies = 0
    const after: string[] = []
    for (const { text, uuid } of sent) {
      let answer = await titanicReply(client, uuid)
      for (let polls = 0; answer?.status === Status.Pending && polls < MAX_POLLS; polls++) {
        await sleep(POLL_MS)
        answer = await titanicReply(client, uuid)
      }
      const reply = answer?.body.map(String).join(' ')
      if (answer?.status === Status.Ok && reply === text) replies++
      log?.(`I: ${uuid}: ${answer?.status ?? 'no reply'} ${reply ?? ''}`)
      await titanicClose(client, uuid)
      after.push((await titanicReply(client, uuid))?.status ?? 'no reply')
    }
    const filesLeft = (await readdir(dir)).length
    return { requests, before, replies, after, filesLeft }
  } finally {
    client.close()
    await echo?.close()
    await serving
    await titanic.close()
    await broker.close()
    if (opts.dir === undefined) await rm(dir, { recursive: true, force: true })
  }
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
