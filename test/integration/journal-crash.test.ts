/**
 * The journal's promise under a real crash: a child process (test/helpers/journal-writer.ts) writes
 * without pause and reports every call right after it was acknowledged; this process SIGKILLs it at
 * a random moment, opens the journal itself and checks that every acknowledged call is there. A call
 * written but not yet acknowledged may be there or not. Ten rounds on one directory, each with new
 * keys, with a small maxFileBytes so that compactions run (and get killed) too.
 *
 * SIGKILL keeps the OS cache, so this shows the journal's own logic (batches, acknowledgment order,
 * torn tails, compaction's rename), not fsync against a power loss: that needs a machine to switch off.
 */
import { expect } from 'chai'
import { fork } from 'node:child_process'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { JOURNAL_FILE, Journal, type SyncMode } from '../../lib/broker/journal.js'
import { journalOps, type WriterAcks, type WriterReady, type WriterValue } from '../helpers/journal-writer.js'

const WRITER = new URL('../helpers/journal-writer.js', import.meta.url).pathname
const ROUNDS = 10
const MAX_FILE_BYTES = 256 * 1024
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

interface Run {
  /** Key number → the last step of it acknowledged. */
  readonly acked: Map<number, number>
  /** What the writer read back when it opened the journal. */
  readonly recovered: number
  readonly compactions: number
}

/** Forks a writer on `dir`, lets it write for `killAfterMs` once ready, SIGKILLs it, and returns what it acknowledged. */
async function runAndKill(dir: string, sync: SyncMode, prefix: string, killAfterMs: number): Promise<Run> {
  const child = fork(WRITER, [dir, sync, prefix, String(MAX_FILE_BYTES)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const acked = new Map<number, number>()
  let compactions = 0
  let error: string | undefined
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)))
  // Every message sent before the kill has been read once the channel is closed.
  const disconnected = new Promise<void>((resolve) => child.once('disconnect', resolve))
  const ready = new Promise<number>((resolve, reject) => {
    child.on('message', (message: WriterReady | WriterAcks | { error: string }) => {
      if ('ready' in message) resolve(message.recovered)
      else if ('acked' in message) {
        for (const [n, step] of message.acked) acked.set(n, Math.max(acked.get(n) ?? -1, step))
        compactions = Math.max(compactions, message.compactions)
      } else {
        error = message.error
        reject(new Error(`the writer failed: ${message.error}`))
      }
    })
    void exited.then(() => reject(new Error('the writer exited before it was ready')))
  })
  let recovered: number
  try {
    recovered = await ready
    await sleep(killAfterMs)
  } finally {
    child.kill('SIGKILL')
    await Promise.all([exited, disconnected])
  }
  expect(error).to.equal(undefined)
  expect(child.signalCode, 'the writer was still running when killed').to.equal('SIGKILL')
  return { acked, recovered, compactions }
}

describe('journal crash: SIGKILL while writing, then read back', function () {
  this.timeout(40_000)

  for (const sync of ['always', 'none'] as const) {
    it(`${sync}: every acknowledged call is read back, ${ROUNDS} rounds on one directory`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'zrpc-journal-crash-'))
      try {
        // What the journal held when last read back: earlier rounds' keys must stay exactly so.
        let known = new Map<string, WriterValue>()
        let acknowledged = 0
        let compactions = 0
        for (let round = 0; round < ROUNDS; round++) {
          const prefix = `r${round}`
          const killAfter = 50 + Math.floor(Math.random() * 251)
          const where = `round ${round} (${sync}, killed ${killAfter} ms after ready)`
          const run = await runAndKill(dir, sync, prefix, killAfter)
          expect(run.recovered, `${where}: the writer read back what this process did`).to.equal(known.size)
          expect(run.acked.size, `${where}: nothing was acknowledged`).to.be.above(0)
          acknowledged += run.acked.size
          compactions += run.compactions

          const journal = await Journal.open<WriterValue>({ dir, sync, maxFileBytes: MAX_FILE_BYTES })
          try {
            const got = journal.recovered
            for (const [n, step] of run.acked) {
              const key = `${prefix}-${n}`
              // Acknowledged through `step`: the key is as some later step (or that one) left it.
              const allowed = journalOps(prefix, n)
                .slice(step)
                .map((s) => s.value)
              expect(allowed, `${where}: ${key} acknowledged through step ${step}, read back as ${JSON.stringify(got.get(key))}`).to.deep.include(got.get(key))
            }
            for (const [key, value] of got) {
              if (key.startsWith(`${prefix}-`)) {
                // Written but maybe not acknowledged: still one of the values it was given.
                const n = Number(key.slice(prefix.length + 1))
                expect(journalOps(prefix, n).map((s) => s.value), `${where}: ${key}`).to.deep.include(value)
              } else expect(known.get(key), `${where}: ${key} of an earlier round changed or appeared`).to.deep.equal(value)
            }
            for (const key of known.keys()) expect(got.has(key), `${where}: ${key} of an earlier round lost`).to.equal(true)
            known = new Map(got)
          } finally {
            await journal.close()
          }
          expect(await readdir(dir)).to.deep.equal([JOURNAL_FILE])
        }
        expect(acknowledged).to.be.above(ROUNDS * 50)
        if (sync === 'always') expect(compactions, 'no compaction ran: the test would not cover it').to.be.above(0)
      } finally {
        await rm(dir, { recursive: true, force: true })
      }
    })
  }
})
