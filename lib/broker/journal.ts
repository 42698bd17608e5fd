/**
 * The broker's durable store: an append-only journal of puts and deletes in one file, read back
 * into a Map when opened. A record whose write was acknowledged is read back after a crash.
 *
 * ```
 *   dir/journal.zj
 *   ┌────────────┬────────────┬─────────────────────────────┐┌────────────┬───
 *   │ len u32 LE │ crc32 u32LE│ payload: CBOR [op, key, v?] ││ len u32 LE │ ...
 *   └────────────┴────────────┴─────────────────────────────┘└────────────┴───
 *     op 1 = put (key, value), op 2 = delete (key)
 *
 *   put/delete ─▶ batch of this turn ─▶ one write ─▶ datasync (per mode) ─▶ the batch's promises resolve
 *                 (calls made while a write is in flight form the next batch: group commit)
 * ```
 *
 * Sync modes, what an acknowledged (resolved) write survives:
 * - `always`: the batch was written and fdatasync'ed: a power loss.
 * - `batch`:  written at once; fdatasync at most every `syncIntervalMs`, acknowledged after it: a power loss.
 * - `none`:   write(2) returned, the bytes are in the OS cache: a process crash (SIGKILL), not a power loss.
 *
 * Recovery reads the records in order and stops at the first one that cannot be whole (a length of
 * 0, over {@link MAX_RECORD_BYTES} or past the end of the file, a CRC mismatch, a payload that does
 * not decode): the torn tail of a write a crash interrupted. The file is truncated there; no record
 * before it was touched, so every acknowledged one is kept. (Damage in the middle of the file reads
 * the same way and loses what follows it: the journal does not look past a bad record.)
 *
 * Compaction: once the file passes `maxFileBytes` and its live records take less than half of it,
 * the live records are copied to `journal.zj.tmp`, which is fsynced and renamed over the journal, and
 * the directory fsynced. It runs between two batches, so nothing is lost or reordered, and a crash
 * at any point leaves either the old file whole or the new one (a leftover `.tmp` is removed on open).
 *
 * Memory: the journal keeps the values of the pending batch only. To compact without the values it
 * keeps a small index, key → where its last put lies in the file.
 */
import { constants } from 'node:fs'
import { mkdir, open, rename, rm } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import * as zlib from 'node:zlib'
import { Decoder } from 'cbor-x'
import { encodeCbor } from '../codec/cbor.js'

/** What an acknowledged write survives; see the module comment. */
export type SyncMode = 'always' | 'batch' | 'none'

export interface JournalOptions {
  /** The directory of the journal; created if missing. One journal per directory, one process at a time. */
  readonly dir: string
  /** Default 'always'. */
  readonly sync?: SyncMode
  /** In 'batch' mode, the least time between two fdatasyncs (default 10 ms). */
  readonly syncIntervalMs?: number
  /** File size past which compaction runs, if live records take less than half of it (default 64 MiB). */
  readonly maxFileBytes?: number
}

export const JOURNAL_DEFAULTS = { sync: 'always', syncIntervalMs: 10, maxFileBytes: 64 * 1024 * 1024 } as const

/** The journal's file in its directory. */
export const JOURNAL_FILE = 'journal.zj'

/** Largest payload of one record; a longer length read back is taken for a torn tail. */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024

export interface JournalStats {
  /** Batches written to the journal (one write each). */
  writes: number
  /** fdatasyncs of those writes. Compaction's own fsyncs are not counted. */
  syncs: number
  /** Bytes of records appended (compaction copies not counted). */
  bytesWritten: number
  compactions: number
  /** Records (puts and deletes) read back when the journal was opened. */
  recoveredRecords: number
  /** Bytes of torn tail cut off when the journal was opened. */
  truncatedBytes: number
}

/**
 * - `closed`: a put or delete after close().
 * - `broken`: a write, sync or compaction failed; the file may end in a partial batch, so nothing more is appended.
 * - `too-large`: one record's payload exceeds {@link MAX_RECORD_BYTES}.
 */
export type JournalErrorReason = 'closed' | 'broken' | 'too-large'

export class JournalError extends Error {
  override readonly name = 'JournalError'
  constructor(
    readonly reason: JournalErrorReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }
}

const HEADER_BYTES = 8
const OP_PUT = 1
const OP_DELETE = 2
/** Bytes read at a time on recovery and during compaction. */
const CHUNK_BYTES = 1024 * 1024

/** Where a key's last put lies in the file. */
interface Slot {
  offset: number
  bytes: number
}

/** One turn's records, written together; its promise is shared by every call in it. */
interface Batch {
  readonly chunks: Buffer[]
  /** Per record, in order: what to apply to the index once written. */
  readonly ops: { readonly op: number; readonly key: string; readonly bytes: number }[]
  bytes: number
  readonly done: Promise<void>
  readonly resolve: () => void
  readonly reject: (err: unknown) => void
}

// Our own records, CRC-checked, so cbor-x reads them without zrpc's peer profile: that profile
// refuses tags (a Date) and large item counts, which encodeCbor writes, and a refusal here would
// truncate acknowledged records. copyBuffers: a byte string must not be a view of the read buffer.
// copyBuffers is honoured by cbor-x but missing from its typings.
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true, copyBuffers: true } as ConstructorParameters<typeof Decoder>[0])

/**
 * An append-only journal of key → value records with group commit.
 *
 * @example
 * const journal = await Journal.open<Job>({ dir: '/var/lib/broker' })
 * for (const [key, job] of journal.recovered) requeue(key, job)
 * journal.releaseRecovered()
 * await journal.put(id, job)          // on disk: now the broker answers for it
 * void journal.delete(id)             // done; a lost delete only means a replay after a crash
 */
export class Journal<V> {
  private readonly path: string
  private readonly syncMode: SyncMode
  private readonly syncIntervalMs: number
  private readonly maxFileBytes: number
  private recoveredValues: Map<string, V>
  // Insertion order is first-write order, the order compaction copies records in.
  private readonly index: Map<string, Slot>
  private liveBytes: number
  private end: number
  private batch: Batch | undefined
  /** Written, waiting for a datasync ('batch' mode; in 'always' only between a write and its sync). */
  private unsynced: Batch[] = []
  private immediate: NodeJS.Immediate | undefined
  private syncTimer: NodeJS.Timeout | undefined
  private flushing: Promise<void> | undefined
  private lastSyncAt = -Infinity
  private closing = false
  private closed: Promise<void> | undefined
  private broken: JournalError | undefined
  private readonly counters: JournalStats

  private constructor(
    private readonly dir: string,
    private handle: FileHandle,
    options: JournalOptions,
    recovery: Recovery<V>,
  ) {
    this.path = join(dir, JOURNAL_FILE)
    this.syncMode = options.sync ?? JOURNAL_DEFAULTS.sync
    this.syncIntervalMs = options.syncIntervalMs ?? JOURNAL_DEFAULTS.syncIntervalMs
    this.maxFileBytes = options.maxFileBytes ?? JOURNAL_DEFAULTS.maxFileBytes
    this.recoveredValues = recovery.values
    this.index = recovery.index
    this.liveBytes = recovery.liveBytes
    this.end = recovery.end
    this.counters = { writes: 0, syncs: 0, bytesWritten: 0, compactions: 0, recoveredRecords: recovery.records, truncatedBytes: recovery.truncatedBytes }
  }

  /** Opens (or creates) the journal in `options.dir` and reads it back, cutting off a torn tail. */
  static async open<V>(options: JournalOptions): Promise<Journal<V>> {
    const sync = options.sync ?? JOURNAL_DEFAULTS.sync
    if (sync !== 'always' && sync !== 'batch' && sync !== 'none') throw new TypeError(`sync must be 'always', 'batch' or 'none', got ${String(sync)}`)
    const interval = options.syncIntervalMs ?? JOURNAL_DEFAULTS.syncIntervalMs
    if (!(Number.isFinite(interval) && interval >= 0)) throw new TypeError(`syncIntervalMs must be a number >= 0, got ${interval}`)
    const maxFileBytes = options.maxFileBytes ?? JOURNAL_DEFAULTS.maxFileBytes
    if (!(Number.isInteger(maxFileBytes) && maxFileBytes >= 1)) throw new TypeError(`maxFileBytes must be a positive integer, got ${maxFileBytes}`)

    const dir = resolve(options.dir)
    const made = await mkdir(dir, { recursive: true })
    // A new directory's entry must reach the disk too, up to the first one that already existed.
    if (made !== undefined) for (let d = dir; d !== dirname(made); d = dirname(d)) await syncDir(dirname(d))
    const path = join(dir, JOURNAL_FILE)
    // A compaction that did not reach its rename: the journal itself is whole.
    await rm(`${path}.tmp`, { force: true })
    let handle: FileHandle
    try {
      handle = await open(path, constants.O_RDWR)
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw err
      handle = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o644)
      await syncDir(dir)
    }
    try {
      const recovery = await recover<V>(handle)
      if (recovery.truncatedBytes > 0) {
        await handle.truncate(recovery.end)
        await handle.sync()
      }
      return new Journal<V>(dir, handle, options, recovery)
    } catch (err) {
      await handle.close()
      throw err
    }
  }

  /** Every live record read back on open: key → value, in the order they were first written (until {@link releaseRecovered}). */
  get recovered(): ReadonlyMap<string, V> {
    return this.recoveredValues
  }

  /** Drops the journal's hold on the recovered values, once the caller has taken them over. */
  releaseRecovered(): void {
    this.recoveredValues = new Map()
  }

  /**
   * Sets `key` to `value` (a new record or a replacement). Resolves once durable per the sync mode;
   * every call of one event-loop turn shares one write and one sync. Values are read back as
   * decodeCbor reads them (a Map as a plain object).
   */
  put(key: string, value: V): Promise<void> {
    return this.append(OP_PUT, key, [OP_PUT, key, value])
  }

  /** Removes `key`. Resolves once durable per the sync mode; not awaiting it is safe (a rejection is never unhandled). */
  delete(key: string): Promise<void> {
    return this.append(OP_DELETE, key, [OP_DELETE, key])
  }

  /** Live records written to the file (a call counts once its batch is written). */
  get size(): number {
    return this.index.size
  }

  /** Bytes in the file. */
  get fileBytes(): number {
    return this.end
  }

  get stats(): JournalStats {
    return { ...this.counters }
  }

  /**
   * Writes what is pending (syncing it, unless in 'none' mode) and closes the file. Rejects with the
   * `broken` error if a write failed, then or before: some records were not stored.
   */
  close(): Promise<void> {
    this.closed ??= this.shutdown()
    return this.closed
  }

  private append(op: number, key: string, entry: unknown[]): Promise<void> {
    if (this.closing) return handled(Promise.reject(new JournalError('closed', `the journal ${this.path} is closed`)))
    if (this.broken !== undefined) return handled(Promise.reject(this.broken))
    if (typeof key !== 'string') return handled(Promise.reject(new TypeError(`a journal key must be a string, got ${typeof key}`)))
    let payload: Buffer
    try {
      payload = encodeCbor(entry)
    } catch (err) {
      return handled(Promise.reject(err))
    }
    if (payload.length > MAX_RECORD_BYTES) {
      return handled(Promise.reject(new JournalError('too-large', `a journal record of ${payload.length} bytes exceeds ${MAX_RECORD_BYTES}`)))
    }
    const header = Buffer.allocUnsafe(HEADER_BYTES)
    header.writeUInt32LE(payload.length, 0)
    header.writeUInt32LE(crc32(payload), 4)
    const batch = (this.batch ??= newBatch())
    // payload is a view into cbor-x's slab that no later encode overwrites: held, not copied, until the write.
    batch.chunks.push(header, payload)
    batch.ops.push({ op, key, bytes: HEADER_BYTES + payload.length })
    batch.bytes += HEADER_BYTES + payload.length
    this.schedule()
    return batch.done
  }

  /** One flush at a time; setImmediate rather than a microtask so that a whole turn joins one batch. */
  private schedule(): void {
    if (this.closing || this.flushing !== undefined || this.immediate !== undefined) return
    this.immediate = setImmediate(() => {
      this.immediate = undefined
      this.flushing = this.flush().finally(() => {
        this.flushing = undefined
        // Calls made between the loop's last look and now.
        if (this.batch !== undefined) this.schedule()
      })
    })
  }

  /** Writes batches until none is pending, syncing per the mode, compacting between them. Never rejects. */
  private async flush(): Promise<void> {
    let writing: Batch | undefined
    try {
      for (;;) {
        writing = this.batch
        if (writing !== undefined) {
          this.batch = undefined
          await this.write(writing)
          if (this.syncMode === 'none') writing.resolve()
          else this.unsynced.push(writing)
          writing = undefined
        }
        if (this.unsynced.length > 0) {
          const wait = this.syncMode === 'always' || this.closing ? 0 : this.lastSyncAt + this.syncIntervalMs - performance.now()
          if (wait <= 0) await this.syncWritten()
          else if (this.batch === undefined) {
            this.syncTimer ??= setTimeout(() => {
              this.syncTimer = undefined
              this.schedule()
            }, Math.ceil(wait))
            return
          }
        }
        if (this.end > this.maxFileBytes && this.liveBytes * 2 < this.end) await this.compact()
        if (this.batch === undefined) return
      }
    } catch (err) {
      this.fail(err, writing)
    }
  }

  private async write(batch: Batch): Promise<void> {
    const data = Buffer.concat(batch.chunks, batch.bytes)
    await writeAll(this.handle, data, this.end)
    let offset = this.end
    for (const { op, key, bytes } of batch.ops) {
      this.apply(op, key, offset, bytes)
      offset += bytes
    }
    this.end += data.length
    this.counters.writes++
    this.counters.bytesWritten += data.length
  }

  private async syncWritten(): Promise<void> {
    const batches = this.unsynced
    this.unsynced = []
    // Timed from the start: a sync covers what was written before it began.
    this.lastSyncAt = performance.now()
    try {
      await this.handle.datasync()
    } catch (err) {
      this.unsynced = batches
      throw err
    }
    this.counters.syncs++
    for (const batch of batches) batch.resolve()
  }

  private apply(op: number, key: string, offset: number, bytes: number): void {
    const slot = this.index.get(key)
    if (op === OP_PUT) {
      if (slot === undefined) {
        this.index.set(key, { offset, bytes })
        this.liveBytes += bytes
      } else {
        // Map.set is not needed: the key keeps its place, first-write order.
        this.liveBytes += bytes - slot.bytes
        slot.offset = offset
        slot.bytes = bytes
      }
    } else if (slot !== undefined) {
      this.index.delete(key)
      this.liveBytes -= slot.bytes
    }
  }

  /** Copies the live records to a new file and puts it in place of the journal: temp file, fsync, rename, fsync the directory. */
  private async compact(): Promise<void> {
    const tmp = `${this.path}.tmp`
    const out = await open(tmp, constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC, 0o644)
    let renamed = false
    try {
      const offsets: number[] = []
      const reader = new WindowReader(this.handle, this.end)
      const buffer = Buffer.allocUnsafe(CHUNK_BYTES)
      let buffered = 0
      let written = 0
      for (const slot of this.index.values()) {
        const record = await reader.read(slot.offset, slot.bytes)
        // A record damaged since it was written must not be carried on as if it were good.
        if (crc32(record.subarray(HEADER_BYTES)) !== record.readUInt32LE(4)) throw new Error(`CRC mismatch in the record at ${slot.offset} while compacting`)
        offsets.push(written + buffered)
        if (buffered + record.length > buffer.length) {
          await writeAll(out, buffer.subarray(0, buffered), written)
          written += buffered
          buffered = 0
        }
        if (record.length > buffer.length) {
          await writeAll(out, record, written)
          written += record.length
        } else {
          record.copy(buffer, buffered)
          buffered += record.length
        }
      }
      await writeAll(out, buffer.subarray(0, buffered), written)
      written += buffered
      await out.sync()
      await rename(tmp, this.path)
      renamed = true
      const old = this.handle
      this.handle = out
      let i = 0
      for (const slot of this.index.values()) slot.offset = offsets[i++]!
      this.end = written
      this.liveBytes = written
      this.counters.compactions++
      await old.close()
      await syncDir(this.dir)
    } catch (err) {
      if (!renamed) {
        await out.close().catch(() => undefined)
        await rm(tmp, { force: true }).catch(() => undefined)
      }
      throw err
    }
    // Everything written is in the new file, which was fsynced: batches waiting for a sync are durable.
    for (const batch of this.unsynced) batch.resolve()
    this.unsynced = []
  }

  /** A failed write leaves the file's tail unknown: reject everything now and later, append nothing more. */
  private fail(err: unknown, writing: Batch | undefined): void {
    this.broken ??= new JournalError('broken', `the journal ${this.path} is broken after a failed write; no more writes are accepted: ${(err as Error).message}`, { cause: err })
    if (this.syncTimer !== undefined) clearTimeout(this.syncTimer)
    this.syncTimer = undefined
    writing?.reject(this.broken)
    for (const batch of this.unsynced) batch.reject(this.broken)
    this.unsynced = []
    this.batch?.reject(this.broken)
    this.batch = undefined
  }

  private async shutdown(): Promise<void> {
    this.closing = true
    if (this.immediate !== undefined) clearImmediate(this.immediate)
    this.immediate = undefined
    if (this.syncTimer !== undefined) clearTimeout(this.syncTimer)
    this.syncTimer = undefined
    if (this.flushing !== undefined) await this.flushing
    // closing: the loop syncs at once instead of waiting for the batch interval.
    if (this.broken === undefined && (this.batch !== undefined || this.unsynced.length > 0)) {
      this.flushing = this.flush()
      await this.flushing
      this.flushing = undefined
    }
    await this.handle.close()
    if (this.broken !== undefined) throw this.broken
  }
}

function newBatch(): Batch {
  let resolve!: () => void
  let reject!: (err: unknown) => void
  const done = handled(
    new Promise<void>((res, rej) => {
      resolve = res
      reject = rej
    }),
  )
  return { chunks: [], ops: [], bytes: 0, done, resolve, reject }
}

/** Marks `promise` handled, so a caller that does not await it is not crashed by its rejection; awaiting it still throws. */
function handled(promise: Promise<void>): Promise<void> {
  promise.catch(() => undefined)
  return promise
}

interface Recovery<V> {
  values: Map<string, V>
  index: Map<string, Slot>
  liveBytes: number
  /** Where the last whole record ends: the file is cut there. */
  end: number
  records: number
  truncatedBytes: number
}

/** Replays the file in chunks, up to the first record that is not whole. */
async function recover<V>(handle: FileHandle): Promise<Recovery<V>> {
  const size = (await handle.stat()).size
  const values = new Map<string, V>()
  const index = new Map<string, Slot>()
  let liveBytes = 0
  let records = 0
  let pos = 0
  let buf = Buffer.alloc(0)
  let bufStart = 0
  /** Makes buf cover [pos, pos + need); false if the file ends first. */
  const cover = async (need: number): Promise<boolean> => {
    if (pos + need <= bufStart + buf.length) return true
    if (pos + need > size) return false
    buf = Buffer.allocUnsafe(Math.max(need, Math.min(CHUNK_BYTES, size - pos)))
    bufStart = pos
    await readAll(handle, buf, pos)
    return true
  }
  while (pos < size) {
    if (!(await cover(HEADER_BYTES))) break
    const length = buf.readUInt32LE(pos - bufStart)
    const crc = buf.readUInt32LE(pos - bufStart + 4)
    if (length === 0 || length > MAX_RECORD_BYTES || !(await cover(HEADER_BYTES + length))) break
    const payload = buf.subarray(pos - bufStart + HEADER_BYTES, pos - bufStart + HEADER_BYTES + length)
    if (crc32(payload) !== crc) break
    let entry: unknown
    try {
      entry = decoder.decode(payload)
    } catch {
      break
    }
    if (!Array.isArray(entry) || typeof entry[1] !== 'string') break
    const [op, key] = entry as [unknown, string]
    const bytes = HEADER_BYTES + length
    if (op === OP_PUT && entry.length === 3) {
      values.set(key, entry[2] as V)
      const slot = index.get(key)
      if (slot === undefined) {
        index.set(key, { offset: pos, bytes })
        liveBytes += bytes
      } else {
        liveBytes += bytes - slot.bytes
        slot.offset = pos
        slot.bytes = bytes
      }
    } else if (op === OP_DELETE && entry.length === 2) {
      values.delete(key)
      const slot = index.get(key)
      if (slot !== undefined) liveBytes -= slot.bytes
      index.delete(key)
    } else break
    records++
    pos += bytes
  }
  return { values, index, liveBytes, end: pos, records, truncatedBytes: size - pos }
}

/** Reads records at increasing (mostly) offsets through a window of CHUNK_BYTES, so compaction does not read record by record. */
class WindowReader {
  private window = Buffer.alloc(0)
  private start = 0

  constructor(
    private readonly handle: FileHandle,
    private readonly size: number,
  ) {}

  /** The bytes at [offset, offset + length): a view valid until the next read. */
  async read(offset: number, length: number): Promise<Buffer> {
    if (offset < this.start || offset + length > this.start + this.window.length) {
      const size = Math.max(length, Math.min(CHUNK_BYTES, this.size - offset))
      if (this.window.length !== size) this.window = Buffer.allocUnsafe(size)
      this.start = offset
      await readAll(this.handle, this.window, offset)
    }
    return this.window.subarray(offset - this.start, offset - this.start + length)
  }
}

/** write(2) may write less than asked (a full disk, a signal): go on until all is written or it fails. */
async function writeAll(handle: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done)
    if (bytesWritten <= 0) throw new Error(`write returned ${bytesWritten} at ${position + done}`)
    done += bytesWritten
  }
}

async function readAll(handle: FileHandle, into: Buffer, position: number): Promise<void> {
  let done = 0
  while (done < into.length) {
    const { bytesRead } = await handle.read(into, done, into.length - done, position + done)
    if (bytesRead <= 0) throw new Error(`the journal ended at ${position + done} while reading ${into.length} bytes at ${position}`)
    done += bytesRead
  }
}

/** A rename or a new file survives a crash once the directory itself is fsynced. Some systems (Windows) cannot open a directory: nothing to do there. */
async function syncDir(dir: string): Promise<void> {
  const unsupported = new Set(['EISDIR', 'EPERM', 'EACCES', 'EINVAL', 'ENOTSUP'])
  let handle: FileHandle
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

let crcTable: Uint32Array | undefined

/** CRC-32 (IEEE, as zlib and PNG): a table-driven one for Node before 20.15, which has no zlib.crc32. */
export function tableCrc32(data: Uint8Array): number {
  const table = (crcTable ??= Uint32Array.from({ length: 256 }, (_, n) => {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    return c >>> 0
  }))
  let crc = 0xffffffff
  for (let i = 0; i < data.length; i++) crc = table[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8)
  return (crc ^ 0xffffffff) >>> 0
}

/** CRC-32 of `data`: zlib's (native) where Node has it. */
export const crc32: (data: Uint8Array) => number = typeof zlib.crc32 === 'function' ? (data) => zlib.crc32(data) : tableCrc32
