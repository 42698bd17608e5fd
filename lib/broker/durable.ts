/**
 * The durable broker's record of the calls it accepted, on disk (journal.ts) and in memory, so a
 * broker killed at any point and started again on the same directory loses no accepted call.
 *
 * ```
 *   REQUEST ─► accept: written (fsync) ─► queued ─► sent: written, for a call that must not run twice ─► worker
 *                                         answer ─► answered: written with the answer ─► to the client ─► delivered: deleted
 *   restart: queued (or sent, idempotent) → queued again; sent, not idempotent → answered "may have run";
 *            answered → delivered when its client reconnects (or collected, for a ticket)
 * ```
 * A call is found by its client (routing id) and its id: a zrpc client of a durable broker keeps a
 * fixed routing id and sends its pending calls again after a reconnect, and those are recognised
 * here rather than run twice. Memory: one entry per accepted call until its answer is delivered;
 * answers no client came back for are dropped once the call's deadline is a minute past.
 */
import { peekHeader } from '../codec/envelope-heads.js'
import { Journal, type JournalStats, type SyncMode } from './journal.js'

/** Where a durable broker keeps its calls, and what an acknowledged write survives (journal.ts). */
export interface DurableOptions {
  readonly dir: string
  /** Default 'always': each accepted call is fsynced before it is queued (group commit). */
  readonly sync?: SyncMode
}

/** One accepted call as the journal keeps it (short keys: the journal writes them for every call). */
export interface StoredCall {
  /** The client's routing id; null for a deferred call (the broker is its client). */
  readonly c: Uint8Array | null
  /** The MDP service. */
  readonly s: string
  /** The REQUEST envelope as received (or made, for a deferred call). */
  readonly f: Uint8Array
  /** Accepted at, ms since the epoch. */
  readonly at: number
  /** Deadline, ms since the epoch. */
  readonly dl: number
  /** Idempotent (it carries a call key): may be given to a worker again after a crash. */
  readonly k: boolean
  /** 0 queued, 1 sent to a worker (recorded only for calls that are not idempotent), 2 answered. */
  st: 0 | 1 | 2
  /** The answer envelope, once answered. */
  a?: Uint8Array
  /** The ticket of a deferred call. */
  readonly t?: string
}

export interface DurableEntry {
  /** Its answer went to its client once (it stays on record a little longer). */
  delivered?: boolean
  readonly seq: string
  /** The client's routing id (latin1) and the call id: how resends and answers find it. */
  readonly key: string
  readonly call: StoredCall
}

export interface DurableStats {
  /** Calls on record: accepted and not yet delivered. */
  readonly calls: number
  /** Answers delivered and kept a little longer, for a resend after a crash (DELIVERED_GRACE_MS). */
  readonly delivered: number
  readonly fileBytes: number
  readonly journal: JournalStats
  /** REQUESTs sent again by a reconnecting client for calls already on record. */
  readonly resends: number
}

/** How long past its deadline an answer waits for its client to come back. */
const UNCLAIMED_ANSWER_MS = 60_000
/**
 * How long a delivered answer stays on record: the send may not have left when the broker died, and
 * the client then sends the call again after it reconnects; it must get the answer, not a second run.
 */
export const DELIVERED_GRACE_MS = 5000
/** Delivered answers kept in their grace period at most; past it the oldest are forgotten early. */
const MAX_DELIVERED = 100_000

/**
 * @example
 * const durable = await DurableCalls.open({ dir: '/var/lib/zrpc' })
 * for (const entry of durable.entries()) restore(entry)
 */
export class DurableCalls {
  private readonly byKey = new Map<string, DurableEntry>()
  /** Delivered answers in their grace period, oldest first, with when they were delivered. */
  private readonly delivered: Array<{ entry: DurableEntry; at: number }> = []
  private deliveredHead = 0
  private lastSeq = 0
  resends = 0

  private constructor(private readonly journal: Journal<StoredCall>) {}

  static async open(options: DurableOptions): Promise<DurableCalls> {
    const journal = await Journal.open<StoredCall>({ dir: options.dir, ...(options.sync !== undefined && { sync: options.sync }) })
    const durable = new DurableCalls(journal)
    for (const [seq, call] of journal.recovered) {
      durable.lastSeq = Math.max(durable.lastSeq, Number.parseInt(seq, 36) || 0)
      const entry: DurableEntry = { seq, key: keyOf(call.c, idOf(call)), call: { ...call, c: call.c === null ? null : Buffer.from(call.c), f: Buffer.from(call.f), ...(call.a !== undefined && { a: Buffer.from(call.a) }) } }
      durable.byKey.set(entry.key, entry)
    }
    journal.releaseRecovered()
    return durable
  }

  /** Every call on record, oldest first. */
  entries(): IterableIterator<DurableEntry> {
    return this.byKey.values()
  }

  get size(): number {
    return this.byKey.size
  }

  find(client: Uint8Array | null, id: number): DurableEntry | undefined {
    return this.byKey.get(keyOf(client, id))
  }

  /** Records a call just accepted; the promise resolves once it is durable (then it may be queued). */
  accept(call: StoredCall, id: number): { entry: DurableEntry; written: Promise<void> } {
    const entry: DurableEntry = { seq: (++this.lastSeq).toString(36), key: keyOf(call.c, id), call }
    this.byKey.set(entry.key, entry)
    return { entry, written: this.journal.put(entry.seq, call) }
  }

  /** The call is about to go to a worker and must not run twice: durable before it goes. */
  sent(entry: DurableEntry): Promise<void> {
    entry.call.st = 1
    return this.journal.put(entry.seq, entry.call)
  }

  /** The call's answer came: kept until it is delivered. Not awaited: a crash before it is written only costs the answer (the call counts as sent). */
  answered(entry: DurableEntry, answer: Uint8Array): void {
    if (entry.call.st === 2) return
    entry.call.st = 2
    entry.call.a = answer
    void this.journal.put(entry.seq, entry.call).catch(() => undefined)
  }

  /** The answer reached its client (or the ticket was collected, or nobody came): forgotten. */
  forget(entry: DurableEntry): void {
    if (this.byKey.get(entry.key) !== entry) return
    this.byKey.delete(entry.key)
    void this.journal.delete(entry.seq).catch(() => undefined)
  }

  /** The answer went to its client: forgotten after {@link DELIVERED_GRACE_MS}, so a resend meanwhile still finds it. */
  deliveredNow(entry: DurableEntry, now: number): void {
    if (entry.delivered === true) return
    entry.delivered = true
    this.delivered.push({ entry, at: now })
    if (this.delivered.length - this.deliveredHead > MAX_DELIVERED) this.forget(this.delivered[this.deliveredHead++]!.entry)
  }

  /** Forgets delivered answers past their grace, and answered calls whose client has not come back within a minute of the deadline. */
  sweep(now: number): void {
    while (this.deliveredHead < this.delivered.length && now - this.delivered[this.deliveredHead]!.at >= DELIVERED_GRACE_MS) this.forget(this.delivered[this.deliveredHead++]!.entry)
    if (this.deliveredHead > 1024 && this.deliveredHead * 2 > this.delivered.length) {
      this.delivered.splice(0, this.deliveredHead)
      this.deliveredHead = 0
    }
    for (const entry of [...this.byKey.values()]) if (entry.call.st === 2 && entry.call.c !== null && now > entry.call.dl + UNCLAIMED_ANSWER_MS) this.forget(entry)
  }

  get stats(): DurableStats {
    const delivered = this.delivered.length - this.deliveredHead
    return { calls: this.byKey.size - delivered, delivered, fileBytes: this.journal.fileBytes, journal: this.journal.stats, resends: this.resends }
  }

  close(): Promise<void> {
    return this.journal.close()
  }
}

/** The call id in a stored REQUEST: its header's third item, read without decoding the rest. */
function idOf(call: StoredCall): number {
  return peekHeader(call.f)?.id ?? -1
}

/** A call's key: its client's routing id (latin1; '' for the broker's own) and its id. */
export function keyOf(client: Uint8Array | null, id: number): string {
  return `${client === null ? '' : Buffer.from(client.buffer, client.byteOffset, client.byteLength).toString('latin1')}/${id}`
}
