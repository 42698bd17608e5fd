import { expect } from 'chai'
import { CALL_RECORD_DEFAULTS, CallRecord, ENTRY_OVERHEAD_BYTES, type RecordedOutcome } from '../../lib/rpc/call-record.js'

const ok = (size: number, fill = 1): RecordedOutcome => ({ ok: true, result: new Uint8Array(size).fill(fill) })
const failed = (message: string, details?: unknown): RecordedOutcome => ({ ok: false, code: 'NOT_FOUND', message, details })

/** Bytes of a finished entry with an ok outcome of `size` bytes. */
const okBytes = (key: string, size: number): number => key.length + size + ENTRY_OVERHEAD_BYTES
const runningBytes = (key: string): number => key.length + ENTRY_OVERHEAD_BYTES

describe('call record', () => {
  it('keeps a finished call and returns its outcome on lookup, ok or error', () => {
    const record = new CallRecord<string>()
    record.begin('k1', 0)
    expect(record.finish('k1', ok(3, 7), 1)).to.deep.equal([])
    expect(record.lookup('k1', 2)).to.deep.equal({ state: 'done', outcome: { ok: true, result: new Uint8Array([7, 7, 7]) } })

    record.begin('k2', 3)
    record.finish('k2', failed('no user 42', { id: 42 }), 4)
    expect(record.lookup('k2', 5)).to.deep.equal({ state: 'done', outcome: { ok: false, code: 'NOT_FOUND', message: 'no user 42', details: { id: 42 } } })
    expect(record.lookup('never', 5)).to.equal(undefined)
  })

  it('a running call is found running, takes waiters, and finish hands them back in the order they came', () => {
    const record = new CallRecord<string>()
    record.begin('k', 0)
    expect(record.lookup('k', 1)).to.deep.equal({ state: 'running' })
    expect(record.wait('k', 'first')).to.equal(true)
    expect(record.wait('k', 'second')).to.equal(true)
    expect(record.wait('k', 'third')).to.equal(true)
    expect(record.finish('k', ok(1), 2)).to.deep.equal(['first', 'second', 'third'])
    expect(record.lookup('k', 3)?.state).to.equal('done')
  })

  it('a running entry holds at most maxWaiters; wait on a key that is not running is refused', () => {
    const record = new CallRecord<number>({ maxWaiters: 2 })
    record.begin('k', 0)
    expect(record.wait('k', 1)).to.equal(true)
    expect(record.wait('k', 2)).to.equal(true)
    expect(record.wait('k', 3)).to.equal(false)
    expect(record.wait('unknown', 4)).to.equal(false)
    expect(record.finish('k', ok(1), 1)).to.deep.equal([1, 2])
    // Done: there is nothing to wait for, the outcome is there.
    expect(record.wait('k', 5)).to.equal(false)
  })

  it('abandon forgets a running call and returns its waiters; the key may begin again', () => {
    const record = new CallRecord<string>()
    record.begin('k', 0)
    record.wait('k', 'w')
    expect(record.abandon('k')).to.deep.equal(['w'])
    expect(record.lookup('k', 1)).to.equal(undefined)
    expect(record.stats).to.include({ entries: 0, running: 0, bytes: 0 })
    expect(record.abandon('k')).to.deep.equal([])
    record.begin('k', 2)
    expect(record.lookup('k', 2)).to.deep.equal({ state: 'running' })
  })

  it('finish and abandon of a key that is not running return [] and keep the first outcome', () => {
    const record = new CallRecord<string>()
    expect(record.finish('nobody', ok(1), 0)).to.deep.equal([])
    record.begin('k', 0)
    record.finish('k', ok(1, 1), 1)
    expect(record.finish('k', ok(1, 2), 2)).to.deep.equal([])
    expect(record.abandon('k')).to.deep.equal([])
    expect(record.lookup('k', 3)).to.deep.equal({ state: 'done', outcome: { ok: true, result: new Uint8Array([1]) } })
    expect(record.stats.entries).to.equal(1)
  })

  it('a finished outcome is kept for ttlMs after the finish, then forgotten and counted expired', () => {
    const record = new CallRecord<string>({ ttlMs: 100 })
    record.begin('old', 0)
    record.finish('old', ok(1), 1000)
    record.begin('young', 1000)
    record.finish('young', ok(1), 1050)
    // Started long ago but still running: ttl counts from the finish only.
    record.begin('slow', 0)
    expect(record.lookup('old', 1099)?.state).to.equal('done')
    expect(record.lookup('old', 1100)).to.equal(undefined)
    expect(record.lookup('young', 1100)?.state).to.equal('done')
    expect(record.stats.expired).to.equal(1)
    expect(record.lookup('young', 1150)).to.equal(undefined)
    expect(record.lookup('slow', 1_000_000)).to.deep.equal({ state: 'running' })
    expect(record.stats).to.include({ expired: 2, entries: 1, running: 1, bytes: runningBytes('slow') })
  })

  it('over maxBytes, finished entries are evicted oldest first', () => {
    // Three finished entries of 197 bytes fit in 600; a fourth does not.
    const record = new CallRecord<string>({ maxBytes: 600, maxEntryBytes: 200 })
    for (const key of ['a', 'b', 'c']) {
      record.begin(key, 0)
      record.finish(key, ok(100), 0)
    }
    expect(record.stats).to.include({ entries: 3, bytes: 3 * okBytes('a', 100), evicted: 0 })
    record.begin('d', 0)
    record.finish('d', ok(100), 0)
    expect(record.lookup('a', 0)).to.equal(undefined)
    for (const key of ['b', 'c', 'd']) expect(record.lookup(key, 0)?.state, key).to.equal('done')
    expect(record.stats).to.include({ entries: 3, bytes: 3 * okBytes('a', 100), evicted: 1 })
  })

  it('running entries are never evicted, though their bytes count', () => {
    const record = new CallRecord<string>({ maxBytes: 300, maxEntryBytes: 100 })
    record.begin('x', 0)
    record.begin('y', 0)
    record.begin('z', 0)
    record.begin('a', 0)
    // Four running entries exceed maxBytes: nothing can be evicted.
    expect(record.stats).to.include({ running: 4, bytes: 4 * runningBytes('x'), evicted: 0 })
    // The only finished entry goes at once to make room for the running ones.
    record.finish('a', ok(10), 1)
    expect(record.lookup('a', 1)).to.equal(undefined)
    for (const key of ['x', 'y', 'z']) expect(record.lookup(key, 1), key).to.deep.equal({ state: 'running' })
    expect(record.stats).to.include({ running: 3, entries: 3, bytes: 3 * runningBytes('x'), evicted: 1 })
  })

  it('beginning a call makes room among finished entries for its own bytes', () => {
    const record = new CallRecord<string>({ maxBytes: 400, maxEntryBytes: 200 })
    record.begin('a', 0)
    record.finish('a', ok(100), 0)
    record.begin('b', 0)
    record.finish('b', ok(100), 0)
    expect(record.stats.bytes).to.equal(2 * okBytes('a', 100))
    record.begin('c', 0)
    expect(record.lookup('a', 0)).to.equal(undefined)
    expect(record.lookup('b', 0)?.state).to.equal('done')
    expect(record.stats).to.include({ bytes: okBytes('b', 100) + runningBytes('c'), evicted: 1 })
  })

  it('an outcome larger than maxEntryBytes is not kept: counted, its waiters still answered', () => {
    const record = new CallRecord<string>({ maxBytes: 10_000, maxEntryBytes: 100 })
    record.begin('big', 0)
    record.wait('big', 'w')
    expect(record.finish('big', ok(101), 1)).to.deep.equal(['w'])
    expect(record.lookup('big', 1)).to.equal(undefined)
    expect(record.stats).to.include({ tooLarge: 1, entries: 0, bytes: 0 })

    // An error outcome is charged its message bytes (UTF-8) plus 64.
    record.begin('long error', 1)
    record.finish('long error', failed('é'.repeat(19)), 1)
    expect(record.lookup('long error', 1)).to.equal(undefined)
    record.begin('short error', 1)
    record.finish('short error', failed('é'.repeat(18)), 1)
    expect(record.lookup('short error', 1)?.state).to.equal('done')

    record.begin('fits', 1)
    record.finish('fits', ok(100), 1)
    expect(record.lookup('fits', 1)?.state).to.equal('done')
    expect(record.stats.tooLarge).to.equal(2)
  })

  it('keeps its own copy of a result that is a view into a larger buffer', () => {
    const record = new CallRecord<string>()
    const frame = new Uint8Array([9, 1, 2, 3, 9])
    record.begin('k', 0)
    record.finish('k', { ok: true, result: frame.subarray(1, 4) }, 0)
    frame.fill(0)
    const found = record.lookup('k', 0)
    expect(found?.state === 'done' && found.outcome.ok && found.outcome.result).to.deep.equal(new Uint8Array([1, 2, 3]))
    expect(found?.state === 'done' && found.outcome.ok && found.outcome.result.buffer.byteLength).to.equal(3)
    expect(record.stats.bytes).to.equal(okBytes('k', 3))
  })

  it('begin throws for a key already running or done', () => {
    const record = new CallRecord<string>()
    record.begin('k', 0)
    expect(() => record.begin('k', 0)).to.throw(/already recorded \(running\)/)
    record.finish('k', ok(1), 0)
    expect(() => record.begin('k', 0)).to.throw(/already recorded \(done\)/)
    expect(record.stats).to.include({ entries: 1, running: 0 })
  })

  it('options must be positive integers, maxEntryBytes no larger than maxBytes', () => {
    for (const name of ['maxBytes', 'ttlMs', 'maxEntryBytes', 'maxWaiters']) {
      for (const value of [0, -1, 1.5, Number.NaN, Infinity]) {
        expect(() => new CallRecord({ maxBytes: 1 << 30, [name]: value }), `${name} ${value}`).to.throw(TypeError, name)
      }
    }
    expect(() => new CallRecord({ maxBytes: 1000, maxEntryBytes: 1001 })).to.throw(TypeError, 'maxEntryBytes')
    expect(() => new CallRecord({ maxBytes: 1000, maxEntryBytes: 1000 })).to.not.throw()
    // A small maxBytes alone lowers the default entry bound with it.
    expect(() => new CallRecord({ maxBytes: 1000 })).to.not.throw()
    expect(() => new CallRecord()).to.not.throw()
    expect(CALL_RECORD_DEFAULTS).to.deep.equal({ maxBytes: 16 * 1024 * 1024, ttlMs: 60_000, maxEntryBytes: 1024 * 1024, maxWaiters: 16 })
  })

  it('100k distinct calls with 1 KiB outcomes stay within 1 MiB', () => {
    const maxBytes = 1024 * 1024
    const record = new CallRecord<string>({ maxBytes })
    const outcome = ok(1024)
    const calls = 100_000
    let largest = 0
    for (let i = 0; i < calls; i++) {
      const key = `call-${i}`
      expect(record.lookup(key, i)).to.equal(undefined)
      record.begin(key, i)
      record.finish(key, outcome, i)
      largest = Math.max(largest, record.stats.bytes)
    }
    const { bytes, entries, evicted } = record.stats
    expect(largest).to.be.at.most(maxBytes)
    expect(bytes).to.be.at.most(maxBytes)
    // Each entry costs more than 1024 + overhead bytes, so this many fit at most.
    expect(entries).to.be.at.most(Math.floor(maxBytes / (1024 + ENTRY_OVERHEAD_BYTES)))
    expect(entries).to.be.greaterThan(800)
    expect(evicted).to.equal(calls - entries)
    expect(record.lookup(`call-${calls - 1}`, calls)?.state).to.equal('done')
    expect(record.lookup('call-0', calls)).to.equal(undefined)
  })

  it('counts replays, joins, expiries, evictions and outcomes too large, and charges bytes exactly', () => {
    const record = new CallRecord<string>({ maxBytes: 1000, maxEntryBytes: 500, ttlMs: 100 })
    record.begin('run', 0)
    expect(record.stats.bytes).to.equal(runningBytes('run'))
    record.lookup('run', 0)
    record.lookup('run', 0)
    record.begin('err', 0)
    record.finish('err', failed('é'), 10)
    expect(record.stats.bytes).to.equal(runningBytes('run') + 'err'.length + 2 + 64 + ENTRY_OVERHEAD_BYTES)
    record.lookup('err', 20)
    record.lookup('err', 20)
    record.lookup('err', 20)
    record.begin('huge', 20)
    record.finish('huge', ok(501), 20)
    // 'err' has been finished for ttlMs.
    record.lookup('nothing', 110)
    record.begin('a', 110)
    record.finish('a', ok(400), 110)
    record.begin('b', 110)
    // 'a' goes to make room for 'b'.
    record.finish('b', ok(400), 110)
    expect(record.stats).to.deep.equal({
      entries: 2,
      running: 1,
      bytes: runningBytes('run') + okBytes('b', 400),
      replayed: 3,
      joined: 2,
      expired: 1,
      evicted: 1,
      tooLarge: 1,
    })
  })
})
