import { expect } from 'chai'
import { DEFAULT_CBOR_LIMITS, encodeCbor } from '../../lib/codec/cbor.js'
import { decodeTopicEnvelope, encodeTopicEnvelope } from '../../lib/pubsub/frame.js'
import { SequenceTracker } from '../../lib/pubsub/sequence.js'
import { parseStreamFrame, streamFrame, subscriptionPrefix } from '../../lib/pubsub/topic.js'

const id = Buffer.alloc(8, 1)

describe('topic frames (docs/protocol.md section 7)', () => {
  it('writes the envelope byte for byte as the protocol page shows', () => {
    const bytes = encodeTopicEnvelope(id, 5, Buffer.from([0xa0]))
    expect(bytes.toString('hex')).to.equal('8401480101010101010101054' + '1a0')
    expect(encodeTopicEnvelope(id, 70_000, Buffer.alloc(300)).subarray(11, 21).toString('hex')).to.equal('1a000111705901' + '2c0000')
  })

  it('reads what cbor-x writes for the same array, and appended items from a later minor version', () => {
    // cbor-x writes integers from 2^32 up as floats; ours (checked below) writes them as integers.
    for (const seq of [1, 23, 24, 255, 256, 65_535, 65_536, 2 ** 32 - 1]) {
      const env = decodeTopicEnvelope(encodeCbor([1, id, seq, encodeCbor({ a: 1 })]), DEFAULT_CBOR_LIMITS)
      expect(env, `seq ${seq}`).to.not.be.a('string')
      if (typeof env !== 'string') expect([env.seq, env.publisher === id.toString('latin1'), env.data.toString('hex')]).to.deep.equal([seq, true, 'a1616101'])
    }
    for (const seq of [2 ** 32, Number.MAX_SAFE_INTEGER]) {
      const env = decodeTopicEnvelope(encodeTopicEnvelope(id, seq, Buffer.from([0xf6])), DEFAULT_CBOR_LIMITS)
      expect(typeof env === 'string' ? env : env.seq).to.equal(seq)
    }
    expect(decodeTopicEnvelope(encodeCbor([1, id, 2, encodeCbor(null), 'extra']), DEFAULT_CBOR_LIMITS)).to.not.be.a('string')
  })

  it('refuses other versions, short ids, sequence 0, non-bytes data, and non-profile CBOR', () => {
    const bad = [
      encodeCbor([2, id, 1, encodeCbor(1)]),
      encodeCbor([1, Buffer.alloc(4), 1, encodeCbor(1)]),
      encodeCbor([1, id, 0, encodeCbor(1)]),
      encodeCbor([1, id, 1, 'text']),
      encodeCbor([1, id, 1]),
      encodeCbor({ v: 1 }),
      Buffer.from([0x9f, 0x01, 0xff]),
      Buffer.concat([encodeCbor([1, id, 1, encodeCbor(1)]), encodeCbor(1)]),
    ]
    for (const frame of bad) expect(decodeTopicEnvelope(frame, DEFAULT_CBOR_LIMITS), frame.toString('hex')).to.be.a('string')
  })

  it('maps names and keys to NUL-terminated prefixes that cannot collide', () => {
    expect(String(streamFrame('prices', 'AAPL'))).to.equal('prices\0AAPL\0')
    expect(String(subscriptionPrefix('prices'))).to.equal('prices\0')
    expect(streamFrame('prices2', 'AAPL').subarray(0, 7).equals(subscriptionPrefix('prices'))).to.equal(false)
    expect(streamFrame('prices', 'AAPLX').subarray(0, 12).equals(subscriptionPrefix('prices', 'AAPL'))).to.equal(false)
    expect(parseStreamFrame(streamFrame('prices', ''))).to.deep.equal({ topic: 'prices', key: '' })
    for (const bad of ['prices', 'prices\0', '\0k\0', 'a\0b\0c\0']) expect(parseStreamFrame(Buffer.from(bad)), JSON.stringify(bad)).to.equal(undefined)
  })
})

describe('SequenceTracker', () => {
  it('reports first, next, gaps with their size, and duplicates', () => {
    const t = new SequenceTracker(10)
    expect([1, 2, 5, 5, 3, 6].map((seq, at) => t.observe('s', seq, at).kind)).to.deep.equal(['first', 'next', 'gap', 'duplicate', 'duplicate', 'next'])
    expect(t.observe('s', 9, 7)).to.deep.equal({ kind: 'gap', missed: 2 })
  })

  it('keeps at most maxStreams, forgetting the stream first seen longest ago', () => {
    const t = new SequenceTracker(2)
    t.observe('a', 1, 0)
    t.observe('b', 1, 1)
    t.observe('a', 2, 2)
    t.observe('c', 1, 3)
    expect(t.size).to.equal(2)
    expect(t.evicted).to.equal(1)
    expect(t.observe('a', 3, 4).kind, 'a was forgotten').to.equal('first')
    expect(t.observe('c', 2, 5).kind).to.equal('next')
  })
})
