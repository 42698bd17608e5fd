import { expect } from 'chai'
import { appendFile, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as zlib from 'node:zlib'
import { JOURNAL_FILE, Journal, JournalError, MAX_RECORD_BYTES, crc32, tableCrc32, type JournalOptions, type SyncMode } from '../../lib/broker/journal.js'

type Value = { n: number; text: string }
const value = (n: number, size = 20): Value => ({ n, text: 'v'.repeat(size) })

describe('broker journal', () => {
  let dir: string
  let open: Journal<unknown>[] = []
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'zrpc-journal-'))
  })
  afterEach(async () => {
    for (const journal of open) await journal.close().catch(() => undefined)
    open = []
    await rm(dir, { recursive: true, force: true })
  })

  /** Opens the journal in this test's directory; closed after the test if still open. */
  async function openJournal<V = Value>(options: Partial<JournalOptions> = {}): Promise<Journal<V>> {
    const journal = await Journal.open<V>({ dir, ...options })
    open.push(journal as Journal<unknown>)
    return journal
  }

  async function reopen<V = Value>(journal: Journal<V>, options: Partial<JournalOptions> = {}): Promise<Journal<V>> {
    await journal.close()
    return openJournal<V>(options)
  }

  const file = () => join(dir, JOURNAL_FILE)

  describe('records', () => {
    it('put, replace and delete are read back on reopen, in first-write order', async () => {
      let journal = await openJournal()
      expect(journal.recovered.size).to.equal(0)
      await Promise.all([journal.put('a', value(1)), journal.put('b', value(2)), journal.put('c', value(3))])
      await journal.put('a', value(10)) // a replacement keeps a's place
      await journal.delete('b')
      await journal.put('d', value(4))
      await journal.put('b', value(20)) // deleted, then written again: now last
      await journal.delete('never-there')
      expect(journal.size).to.equal(4)

      journal = await reopen(journal)
      expect([...journal.recovered]).to.deep.equal([
        ['a', value(10)],
        ['c', value(3)],
        ['d', value(4)],
        ['b', value(20)],
      ])
      expect(journal.size).to.equal(4)
      expect(journal.stats).to.include({ recoveredRecords: 8, truncatedBytes: 0 })
    })

    it('keeps values that zrpc does not accept from peers (tags, byte strings) and copies byte strings out of its read buffer', async () => {
      let journal = await openJournal<unknown>()
      const values = { date: new Date(1234), bytes: Buffer.from('abc'), nested: { list: [1, 'two', null, true, 2.5], deep: [[[[]]]] } }
      await journal.put('k', values)
      journal = await reopen(journal)
      const got = journal.recovered.get('k') as typeof values
      expect(got).to.deep.equal(values)
      expect(got.bytes.buffer.byteLength).to.be.below(1024)
    })

    it('reopen after reopen continues the same file', async () => {
      let journal = await openJournal()
      await journal.put('a', value(1))
      journal = await reopen(journal)
      await journal.put('b', value(2))
      journal = await reopen(journal)
      expect([...journal.recovered.keys()]).to.deep.equal(['a', 'b'])
      journal.releaseRecovered()
      expect(journal.recovered.size).to.equal(0)
      expect(journal.size).to.equal(2)
    })

    it('creates missing directories', async () => {
      const nested = join(dir, 'x', 'y')
      const journal = await Journal.open<Value>({ dir: nested })
      await journal.put('a', value(1))
      await journal.close()
      const again = await Journal.open<Value>({ dir: nested })
      expect([...again.recovered.keys()]).to.deep.equal(['a'])
      await again.close()
    })

    it('a record over MAX_RECORD_BYTES is refused, and the journal goes on', async () => {
      const journal = await openJournal<unknown>()
      const err = await journal.put('big', Buffer.alloc(MAX_RECORD_BYTES + 1)).catch((e: unknown) => e)
      expect(err).to.be.instanceOf(JournalError).with.property('reason', 'too-large')
      await journal.put('small', 1)
      expect(journal.size).to.equal(1)
    })
  })

  describe('group commit', () => {
    it('many puts in one turn share one write and one sync (always)', async () => {
      const journal = await openJournal()
      const before = journal.stats
      const puts = Array.from({ length: 500 }, (_, i) => journal.put(`k${i}`, value(i)))
      await Promise.all(puts)
      const after = journal.stats
      expect(after.writes - before.writes).to.equal(1)
      expect(after.syncs - before.syncs).to.equal(1)
      expect(after.bytesWritten).to.equal(journal.fileBytes)
      expect((await stat(file())).size).to.equal(journal.fileBytes)
    })

    it('calls made while a write is in flight form the next batch', async () => {
      const journal = await openJournal()
      const first = Array.from({ length: 10 }, (_, i) => journal.put(`a${i}`, value(i)))
      await new Promise((resolve) => setImmediate(resolve)) // the first batch is being written now
      const second = Array.from({ length: 10 }, (_, i) => journal.put(`b${i}`, value(i)))
      await Promise.all([...first, ...second])
      expect(journal.stats).to.include({ writes: 2, syncs: 2 })
      expect(journal.size).to.equal(20)
    })

    it('batch mode: written at once, fewer syncs than writes, each put acknowledged after a sync', async () => {
      let journal = await openJournal({ sync: 'batch', syncIntervalMs: 100 })
      const puts: Promise<void>[] = []
      for (let turn = 0; turn < 8; turn++) {
        for (let i = 0; i < 5; i++) puts.push(journal.put(`t${turn}-${i}`, value(i)))
        await new Promise((resolve) => setTimeout(resolve, 3)) // each turn's batch written before the next
      }
      let acknowledged = 0
      for (const put of puts) void put.then(() => acknowledged++)
      await Promise.all(puts)
      expect(acknowledged).to.equal(40)
      const { writes, syncs } = journal.stats
      expect(writes).to.be.at.least(4)
      expect(syncs).to.be.at.least(1).and.below(writes)
      journal = await reopen(journal)
      expect(journal.recovered.size).to.equal(40)
    })

    it('batch mode: no put is acknowledged before a sync', async () => {
      const journal = await openJournal({ sync: 'batch', syncIntervalMs: 400 })
      await journal.put('first', value(0)) // synced at once: the next sync is 400 ms away
      const syncs = journal.stats.syncs
      let acknowledged = false
      const put = journal.put('second', value(1)).then(() => (acknowledged = true))
      await new Promise((resolve) => setTimeout(resolve, 15))
      expect(journal.stats.writes).to.equal(2) // written already ...
      expect(acknowledged).to.equal(false) // ... but not yet synced
      await put
      expect(journal.stats.syncs).to.equal(syncs + 1)
    })

    it('none mode: acknowledged once written, no sync, read back on reopen', async () => {
      let journal = await openJournal({ sync: 'none' })
      await Promise.all(Array.from({ length: 100 }, (_, i) => journal.put(`k${i}`, value(i))))
      await journal.delete('k0')
      expect(journal.stats).to.include({ writes: 2, syncs: 0 })
      journal = await reopen(journal, { sync: 'none' })
      expect(journal.recovered.size).to.equal(99)
      expect(journal.recovered.get('k99')).to.deep.equal(value(99))
    })
  })

  describe('torn tail', () => {
    /** Writes a, b, c and returns where c's record starts and ends. */
    async function threeRecords(): Promise<{ cStart: number; cEnd: number }> {
      const journal = await openJournal()
      await journal.put('a', value(1))
      await journal.put('b', value(2))
      const cStart = journal.fileBytes
      await journal.put('c', value(3))
      const cEnd = journal.fileBytes
      await journal.close()
      return { cStart, cEnd }
    }

    /** Opens the damaged file: expects a, b (and c unless `lostC`) back, the file cut to `end`, and later appends readable. */
    async function expectRecovered(keys: string[], end: number, truncated: number): Promise<void> {
      let journal = await openJournal()
      expect([...journal.recovered.keys()]).to.deep.equal(keys)
      expect(journal.stats.truncatedBytes).to.equal(truncated)
      expect(journal.fileBytes).to.equal(end)
      expect((await stat(file())).size).to.equal(end)
      await journal.put('after', value(9))
      journal = await reopen(journal)
      expect([...journal.recovered.keys()]).to.deep.equal([...keys, 'after'])
      expect(journal.stats.truncatedBytes).to.equal(0)
    }

    it('half a record at the end is cut off', async () => {
      const { cStart, cEnd } = await threeRecords()
      const whole = await readFile(file())
      await appendFile(file(), whole.subarray(cStart, cStart + Math.floor((cEnd - cStart) / 2)))
      await expectRecovered(['a', 'b', 'c'], cEnd, Math.floor((cEnd - cStart) / 2))
    })

    it('half a header at the end is cut off', async () => {
      const { cEnd } = await threeRecords()
      await appendFile(file(), Buffer.from([5, 0, 0]))
      await expectRecovered(['a', 'b', 'c'], cEnd, 3)
    })

    it('garbage bytes at the end are cut off (absurd length, bad CRC, zeros)', async () => {
      for (const garbage of [Buffer.from('ff'.repeat(40), 'hex'), Buffer.from('0800000012345678'.concat('aa'.repeat(8)), 'hex'), Buffer.alloc(4096)]) {
        const { cEnd } = await threeRecords()
        await appendFile(file(), garbage)
        await expectRecovered(['a', 'b', 'c'], cEnd, garbage.length)
        await closeAll()
        await rm(file())
      }
    })

    it('a flipped byte in the last record loses that record only', async () => {
      const { cStart, cEnd } = await threeRecords()
      const bytes = await readFile(file())
      bytes[cEnd - 3]! ^= 0x40
      await writeFile(file(), bytes)
      await expectRecovered(['a', 'b'], cStart, cEnd - cStart)
    })

    it('a CRC-valid payload that is not a journal entry is cut off', async () => {
      const { cEnd } = await threeRecords()
      const payload = Buffer.from([0x83, 0x07, 0x61, 0x78, 0x01]) // CBOR [7, "x", 1]: op 7
      const header = Buffer.alloc(8)
      header.writeUInt32LE(payload.length, 0)
      header.writeUInt32LE(crc32(payload), 4)
      await appendFile(file(), Buffer.concat([header, payload]))
      await expectRecovered(['a', 'b', 'c'], cEnd, 13)
    })

    async function closeAll(): Promise<void> {
      for (const journal of open) await journal.close().catch(() => undefined)
      open = []
    }
  })

  describe('compaction', () => {
    it('keeps exactly the live records, in first-write order, and reopen reads them', async () => {
      let journal = await openJournal({ maxFileBytes: 4096 })
      const live = new Map<string, Value>()
      for (let round = 0; round < 40; round++) {
        const puts: Promise<void>[] = []
        for (let i = 0; i < 10; i++) {
          const key = `r${round}-${i}`
          puts.push(journal.put(key, value(round * 10 + i, 40)))
          live.set(key, value(round * 10 + i, 40))
        }
        // Every record but one a round done, and one early key kept, replaced now and then.
        for (let i = 0; i < 9 && round > 0; i++) {
          puts.push(journal.delete(`r${round - 1}-${i}`))
          live.delete(`r${round - 1}-${i}`)
        }
        if (round % 7 === 0) {
          puts.push(journal.put('r0-9', value(round, 40)))
          live.set('r0-9', value(round, 40))
        }
        await Promise.all(puts)
      }
      expect(journal.stats.compactions).to.be.at.least(3)
      expect(journal.fileBytes).to.be.below(2 * 4096)
      expect(journal.size).to.equal(live.size)
      expect((await stat(file())).size).to.equal(journal.fileBytes)
      journal = await reopen(journal, { maxFileBytes: 4096 })
      expect([...journal.recovered]).to.deep.equal([...live])
      expect(await readdir(dir)).to.deep.equal([JOURNAL_FILE])
    })

    it('writes made while compacting are neither lost nor reordered', async () => {
      let journal = await openJournal({ maxFileBytes: 2048 })
      const expected = new Map<string, Value>()
      const puts: Promise<void>[] = []
      // Many turns without waiting for the puts: compaction runs between batches while later calls pile up.
      for (let turn = 0; turn < 60; turn++) {
        for (let i = 0; i < 4; i++) {
          puts.push(journal.put(`k${turn}-${i}`, value(turn, 30)))
          expected.set(`k${turn}-${i}`, value(turn, 30))
        }
        if (turn > 0) {
          for (let i = 0; i < 4; i++) {
            if (i === 2) continue
            puts.push(journal.delete(`k${turn - 1}-${i}`))
            expected.delete(`k${turn - 1}-${i}`)
          }
          puts.push(journal.put(`k${turn - 1}-2`, value(-turn, 30)))
          expected.set(`k${turn - 1}-2`, value(-turn, 30))
        }
        await new Promise((resolve) => setTimeout(resolve, 1))
      }
      await Promise.all(puts)
      expect(journal.stats.compactions).to.be.at.least(1)
      journal = await reopen(journal)
      expect([...journal.recovered]).to.deep.equal([...expected])
    })

    it('does not compact while live records fill more than half the file', async () => {
      let journal = await openJournal({ maxFileBytes: 1024 })
      await Promise.all(Array.from({ length: 50 }, (_, i) => journal.put(`k${i}`, value(i, 40))))
      await journal.delete('k0')
      expect(journal.stats.compactions).to.equal(0)
      expect(journal.fileBytes).to.be.above(1024)
      journal = await reopen(journal)
      expect(journal.recovered.size).to.equal(49)
    })

    it('a leftover temp file of an unfinished compaction is removed on open', async () => {
      let journal = await openJournal()
      await journal.put('a', value(1))
      await journal.close()
      await writeFile(`${file()}.tmp`, 'half a compaction')
      journal = await openJournal()
      expect([...journal.recovered.keys()]).to.deep.equal(['a'])
      expect(await readdir(dir)).to.deep.equal([JOURNAL_FILE])
    })
  })

  describe('close and failure', () => {
    for (const sync of ['always', 'batch', 'none'] as SyncMode[]) {
      it(`close writes pending calls (${sync})`, async () => {
        let journal = await openJournal({ sync, syncIntervalMs: 10_000 })
        await journal.put('first', value(0)) // in batch mode the next sync is 10 s away: close must not wait for it
        void journal.put('a', value(1))
        void journal.delete('first')
        const started = Date.now()
        await journal.close()
        expect(Date.now() - started).to.be.below(2000)
        journal = await openJournal()
        expect([...journal.recovered.keys()]).to.deep.equal(['a'])
      })
    }

    it('a put after close rejects; close twice is fine', async () => {
      const journal = await openJournal()
      await journal.close()
      const err = await journal.put('a', value(1)).catch((e: unknown) => e)
      expect(err).to.be.instanceOf(JournalError).with.property('reason', 'closed')
      await journal.close()
      void journal.delete('a') // not awaited: must not be an unhandled rejection
    })

    it('a failed write breaks the journal: that batch and every later call reject, close says so', async () => {
      const journal = await openJournal()
      await journal.put('a', value(1))
      // Pull the file out from under it: the next write fails with EBADF.
      await (journal as unknown as { handle: { close(): Promise<void> } }).handle.close()
      const failed = await journal.put('b', value(2)).catch((e: unknown) => e)
      expect(failed).to.be.instanceOf(JournalError).with.property('reason', 'broken')
      expect((failed as Error).message).to.match(/broken/)
      const later = await journal.put('c', value(3)).catch((e: unknown) => e)
      expect(later).to.equal(failed)
      void journal.delete('a') // not awaited: must not be an unhandled rejection
      const closing = await journal.close().catch((e: unknown) => e)
      expect(closing).to.equal(failed)
      open = open.filter((j) => j !== (journal as Journal<unknown>))
    })

    it('rejects bad options', async () => {
      for (const options of [{ sync: 'sometimes' as SyncMode }, { syncIntervalMs: -1 }, { maxFileBytes: 0 }]) {
        const err = await Journal.open({ dir, ...options }).catch((e: unknown) => e)
        expect(err).to.be.instanceOf(TypeError)
      }
    })
  })

  describe('crc32', () => {
    it('the table version matches zlib', () => {
      expect(tableCrc32(Buffer.from('123456789'))).to.equal(0xcbf43926)
      expect(tableCrc32(new Uint8Array(0))).to.equal(0)
      for (const size of [1, 7, 100, 4096]) {
        const data = Buffer.from(Array.from({ length: size }, (_, i) => (i * 131 + size) & 0xff))
        expect(tableCrc32(data)).to.equal(zlib.crc32(data))
        expect(crc32(data)).to.equal(zlib.crc32(data))
      }
    })
  })
})
