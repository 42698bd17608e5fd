import { expect } from 'chai'
import { SequenceTracker } from '../../lib/pubsub/sequence.js'

const MAX_SAFE = Number.MAX_SAFE_INTEGER

describe('SequenceTracker under forged and restarted sequence numbers', () => {
  it('reads a jump past maxJump as a new epoch, not a gap, and keeps the honest run going', () => {
    const t = new SequenceTracker(10)
    for (let seq = 1; seq <= 100; seq++) t.observe('s', seq, seq)
    expect(t.observe('s', MAX_SAFE, 101)).to.deep.equal({ kind: 'epoch', previous: 100 })
    expect(t.epochs).to.equal(1)
    // Today the forged 2^53-1 made every later honest number a duplicate, for ever.
    expect(t.observe('s', 101, 102)).to.deep.equal({ kind: 'next' })
    expect(t.observe('s', 102, 103)).to.deep.equal({ kind: 'next' })
    expect(t.observe('s', 105, 104)).to.deep.equal({ kind: 'gap', missed: 2 })
    // The forged counter is remembered too: a repeat of it is a duplicate, not another epoch.
    expect(t.observe('s', MAX_SAFE, 105)).to.include({ kind: 'duplicate', latest: true })
    expect(t.epochs).to.equal(1)
  })

  it('never silences the honest stream, whatever forged numbers arrive between its messages', () => {
    const t = new SequenceTracker(10)
    t.observe('s', 1, 0)
    const honest: string[] = []
    for (let seq = 2; seq < 200; seq++) {
      t.observe('s', 2 ** 40 + seq * 2 ** 30, seq)
      t.observe('s', 2 ** 45 - seq * 2 ** 25, seq)
      honest.push(t.observe('s', seq, seq).kind)
    }
    expect(honest.filter((kind) => kind === 'duplicate')).to.deep.equal([])
  })

  it('accepts a stream first seen at a forged number: the honest numbers far below start an epoch', () => {
    const t = new SequenceTracker(10)
    expect(t.observe('s', MAX_SAFE, 1)).to.deep.equal({ kind: 'first' })
    expect(t.observe('s', 7, 2)).to.deep.equal({ kind: 'epoch', previous: MAX_SAFE })
    expect(t.observe('s', 8, 3)).to.deep.equal({ kind: 'next' })
  })

  it('keeps gaps up to maxJump as gaps, and reads a small step back as a duplicate', () => {
    const t = new SequenceTracker(10, { maxJump: 100 })
    t.observe('s', 1, 0)
    expect(t.observe('s', 101, 1)).to.deep.equal({ kind: 'gap', missed: 99 })
    expect(t.observe('s', 1000, 2)).to.deep.equal({ kind: 'epoch', previous: 101 })
    expect(t.observe('s', 999, 3)).to.include({ kind: 'duplicate', latest: false })
  })

  it('reads a run of consecutive numbers below the last as a restarted publisher, after resetRun of them', () => {
    const t = new SequenceTracker(10, { resetRun: 4 })
    for (let seq = 1; seq <= 50; seq++) t.observe('s', seq, seq)
    const kinds = [1, 2, 3, 4, 5, 6].map((seq) => t.observe('s', seq, 50 + seq).kind)
    expect(kinds).to.deep.equal(['duplicate', 'duplicate', 'duplicate', 'epoch', 'next', 'next'])
    // Scattered repeats (last-value replays) never add up to a run.
    const u = new SequenceTracker(10, { resetRun: 4 })
    for (let seq = 1; seq <= 50; seq++) u.observe('s', seq, seq)
    for (let i = 0; i < 10; i++) expect(u.observe('s', 50, 60 + i).kind).to.equal('duplicate')
  })

  it('stays bounded by maxStreams however many forged publisher ids arrive', () => {
    const t = new SequenceTracker(100)
    for (let i = 0; i < 10_000; i++) t.observe(`forged-${i}`, MAX_SAFE, i)
    expect(t.size).to.equal(100)
    expect(t.evicted).to.equal(9_900)
  })
})
