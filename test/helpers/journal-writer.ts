/**
 * A process that writes to a journal until it is killed, for the crash tests: it opens the journal,
 * tells the parent `{ ready, recovered }`, then runs turns of calls without end, and reports each
 * turn's calls `{ acked: [[n, op], ...] }` right after they were acknowledged (their promises resolved).
 *
 *   fork('dist/test/helpers/journal-writer.js', [dir, syncMode, prefix, maxFileBytes])
 *
 * Key n of a run is `${prefix}-${n}`; {@link journalOps} says what is done to it, in order, each step
 * a turn after the one before, so a batch holds steps of different keys.
 */
import { pathToFileURL } from 'node:url'
import { Journal, type SyncMode } from '../../lib/broker/journal.js'

export interface WriterValue {
  readonly key: string
  readonly step: number
  readonly pad: string
}

/** One step on a key: a put of `value`, or a delete (value undefined). */
export interface JournalStep {
  readonly value: WriterValue | undefined
}

/**
 * The steps on key n: put, replace (every other key), delete (three keys in four). Like the broker's
 * life of a request: stored, its reply stored, done.
 */
export function journalOps(prefix: string, n: number): JournalStep[] {
  const key = `${prefix}-${n}`
  const value = (step: number): WriterValue => ({ key, step, pad: 'p'.repeat((n * 37 + step * 11) % 150) })
  const steps: JournalStep[] = [{ value: value(0) }]
  if (n % 2 === 0) steps.push({ value: value(1) })
  if (n % 4 !== 3) steps.push({ value: undefined })
  return steps
}

/** New keys a turn. */
const KEYS_PER_TURN = 4
/** Turns run back to back before a 1 ms pause: several batches in flight, a bounded volume. */
const TURNS_PER_BURST = 3

export interface WriterReady {
  readonly ready: true
  readonly recovered: number
}
export interface WriterAcks {
  /** [key number, step index] of calls acknowledged. */
  readonly acked: [number, number][]
  /** The journal's compactions so far in this process. */
  readonly compactions: number
}

async function main(): Promise<void> {
  const [dir, sync, prefix, maxFileBytes] = process.argv.slice(2)
  const journal = await Journal.open<WriterValue>({ dir: dir!, sync: sync as SyncMode, maxFileBytes: Number(maxFileBytes) })
  process.send!({ ready: true, recovered: journal.recovered.size } satisfies WriterReady)
  journal.releaseRecovered()
  process.on('disconnect', () => process.exit(1))
  // Key n's step s runs in turn n / KEYS_PER_TURN + s.
  const plans = new Map<number, JournalStep[]>()
  for (let turn = 0; ; turn++) {
    const calls: Promise<void>[] = []
    const acked: [number, number][] = []
    for (let back = 0; back < 3; back++) {
      const first = (turn - back) * KEYS_PER_TURN
      if (first < 0) continue
      for (let n = first; n < first + KEYS_PER_TURN; n++) {
        if (back === 0) plans.set(n, journalOps(prefix!, n))
        const step = plans.get(n)![back]
        if (step === undefined) continue
        const key = `${prefix}-${n}`
        calls.push(step.value === undefined ? journal.delete(key) : journal.put(key, step.value))
        acked.push([n, back])
      }
    }
    for (let n = (turn - 2) * KEYS_PER_TURN; n < (turn - 1) * KEYS_PER_TURN; n++) plans.delete(n)
    // Every call of a turn is in one batch: they resolve together, and only then are they reported.
    Promise.all(calls).then(
      () => process.send!({ acked, compactions: journal.stats.compactions } satisfies WriterAcks),
      (err: unknown) => {
        process.send!({ error: String(err) })
        process.exit(1)
      },
    )
    await new Promise((resolve) => (turn % TURNS_PER_BURST === TURNS_PER_BURST - 1 ? setTimeout(resolve, 1) : setImmediate(resolve)))
  }
}

if (process.send !== undefined && import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((err: unknown) => {
    process.send?.({ error: String(err) })
    process.exit(1)
  })
}
