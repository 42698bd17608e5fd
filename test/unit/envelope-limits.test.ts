import { expect } from 'chai'
import { DEFAULT_CBOR_LIMITS, encodeCbor } from '../../lib/codec/cbor.js'
import { peekHeader } from '../../lib/codec/envelope-heads.js'
import {
  DEFAULT_CHUNK_BUDGET,
  ENVELOPE_LIMITS,
  Kind,
  MAX_JOINED_FRAME_BYTES,
  MIN_MAX_MESSAGE_SIZE,
  checkMetadata,
  encodeCancel,
  encodeReply,
  encodeRequest,
  parseFrame,
  readEnvelope,
  readFrameInChunks,
  scanFrame,
  type Envelope,
  type Malformed,
} from '../../lib/codec/envelope.js'

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex')
const request = (metadata: unknown): Buffer => encodeCbor([1, 0, 7, 'calc', 'add', 1000, metadata, hex('a0')])
const one = (frame: Uint8Array): Envelope | Malformed => {
  const all = parseFrame(frame)
  expect(all).to.have.length(1)
  return all[0]!
}
const entries = (count: number, value = ''): Record<string, string> => Object.fromEntries(Array.from({ length: count }, (_, i) => [`k${i}`, value]))

describe('envelope limits: metadata', () => {
  it('accepts 64 entries and 8 KiB of text, refuses 65 entries or 8 KiB + 1 with INVALID_ARGUMENT and the id', () => {
    expect(one(request(entries(64)))).to.deep.include({ kind: Kind.Request, id: 7 })
    expect(one(request(entries(65)))).to.deep.include({ kind: 'malformed', id: 7, code: 'INVALID_ARGUMENT', reason: 'metadata has 65 entries, more than 64' })
    // "k" + 8191 bytes of value = 8192 bytes of text; "é" is 2 bytes of UTF-8.
    expect(one(request({ k: 'v'.repeat(8191) }))).to.deep.include({ kind: Kind.Request, id: 7 })
    expect(one(request({ k: 'v'.repeat(8190) + 'é' }))).to.deep.include({ kind: 'malformed', id: 7, code: 'INVALID_ARGUMENT' })
    expect(one(request({ a: 'x'.repeat(5000), b: 'y'.repeat(5000) }))).to.deep.include({ id: 7, reason: 'metadata holds 10002 bytes of text, more than 8192' })
  })

  it('checkMetadata tells a sender what a receiver would refuse', () => {
    expect(checkMetadata(null)).to.equal(undefined)
    expect(checkMetadata({ tenant: 'a' })).to.equal(undefined)
    expect(checkMetadata(entries(65))).to.match(/65 entries/)
    expect(checkMetadata({ k: 'v'.repeat(9000) })).to.match(/9001 bytes of text/)
    expect(checkMetadata({ k: 1 })).to.match(/map of text to text/)
    expect(checkMetadata([])).to.match(/map of text to text/)
  })
})

describe('envelope limits: data items in one envelope', () => {
  const details = (count: number): unknown[] => Array.from({ length: count }, (_, i) => i)

  it(`reads an envelope of ${ENVELOPE_LIMITS.maxItems} items and answers one item more by its kind, with its id`, () => {
    // [1, 2, 7, "NOT_FOUND", "nope", [0, 1, ...]]: 6 items and the details array before its content.
    const fits = details(ENVELOPE_LIMITS.maxItems - 7)
    expect(one(encodeCbor([1, 2, 7, 'NOT_FOUND', 'nope', fits]))).to.deep.include({ kind: Kind.Error, id: 7, code: 'NOT_FOUND', details: fits })
    // ERROR: still ends its call, as UNKNOWN.
    const oneMore = details(ENVELOPE_LIMITS.maxItems - 6)
    expect(one(encodeCbor([1, 2, 7, 'NOT_FOUND', 'nope', oneMore]))).to.deep.include({ kind: Kind.Error, id: 7, code: 'UNKNOWN', details: null })
    const tooMany = details(ENVELOPE_LIMITS.maxItems)
    // REQUEST and CANCEL: answered INVALID_ARGUMENT.
    expect(one(encodeCbor([1, 0, 7, 'calc', 'add', 1000, null, hex('a0'), tooMany]))).to.deep.include({ kind: 'malformed', id: 7, code: 'INVALID_ARGUMENT' })
    expect(one(encodeCbor([1, 3, 7, tooMany]))).to.deep.include({ kind: 'malformed', id: 7, code: 'INVALID_ARGUMENT' })
    // REPLY: ends its call INTERNAL.
    expect(one(encodeCbor([1, 1, 7, hex('a0'), tooMany]))).to.deep.include({ kind: 'malformed', id: 7, code: 'INTERNAL' })
    // An unknown kind stays an unknown kind, a client ignores it.
    expect(one(encodeCbor([1, 10, 7, tooMany]))).to.deep.include({ kind: 'malformed', id: 7, code: 'UNIMPLEMENTED', unknownKind: 10 })
    // Another version: FAILED_PRECONDITION as for any envelope.
    expect(one(encodeCbor([2, 0, 7, tooMany]))).to.deep.include({ kind: 'malformed', id: 7, code: 'FAILED_PRECONDITION' })
    // No readable id: dropped.
    expect(one(encodeCbor([1, 0, 'seven', tooMany]))).to.deep.include({ kind: 'malformed', id: undefined })
    expect(one(encodeCbor([tooMany]))).to.deep.include({ kind: 'malformed', id: undefined })
  })

  it('a REQUEST with a metadata map of a million entries is answered at once, and its neighbours are still read', () => {
    // The frame that held a server's event loop for 2.4 s: 4 MiB, one map of ~1.4 M {"a": ""} entries.
    const count = Math.floor((4 * 1024 * 1024 - 64) / 3)
    const head = hex('88 01 00 07 64 63616c63 63 616464 19 03e8 ba')
    const countBytes = Buffer.alloc(4)
    countBytes.writeUInt32BE(count)
    const body = Buffer.alloc(count * 3)
    for (let i = 0; i < body.length; i += 3) body.set([0x61, 0x61, 0x60], i)
    const frame = Buffer.concat([encodeCancel(1), head, countBytes, body, hex('40'), encodeCancel(3)])
    const started = performance.now()
    const envelopes = parseFrame(frame, { ...DEFAULT_CBOR_LIMITS, maxBytes: frame.length })
    const ms = performance.now() - started
    expect(envelopes.map((e) => [e.kind, e.id])).to.deep.equal([
      [Kind.Cancel, 1],
      ['malformed', 7],
      [Kind.Cancel, 3],
    ])
    expect(envelopes[1]).to.deep.include({ code: 'INVALID_ARGUMENT' })
    expect((envelopes[1] as Malformed).reason).to.match(/map of \d+ entries exceeds|more than 4096 data items/)
    // Measured 15-30 ms; a generous bound that an unbounded decode (seconds) cannot meet.
    expect(ms).to.be.below(500)
  })

  it('applies the envelope limit whatever the caller passes, and a tighter caller limit too', () => {
    const frame = encodeCbor([1, 2, 7, 'NOT_FOUND', 'nope', details(5000)])
    expect(parseFrame(frame, { ...DEFAULT_CBOR_LIMITS, maxItems: Infinity })[0]).to.deep.include({ code: 'UNKNOWN', details: null })
    expect(parseFrame(frame, { maxBytes: 1 << 20, maxDepth: 32, allowTags: new Set() })[0]).to.deep.include({ code: 'UNKNOWN', details: null })
    const small = encodeCbor([1, 2, 7, 'NOT_FOUND', 'nope', details(10)])
    expect(parseFrame(small, { ...DEFAULT_CBOR_LIMITS, maxItems: 10 })[0]).to.deep.include({ code: 'UNKNOWN', details: null })
    expect(parseFrame(small, { ...DEFAULT_CBOR_LIMITS, maxItems: 20 })[0]).to.deep.include({ code: 'NOT_FOUND' })
  })

  it('peekHeader reads version, kind and id from the first heads only', () => {
    expect(peekHeader(hex('83 01 03 07'))).to.deep.equal({ version: 1, kind: 3, id: 7 })
    expect(peekHeader(encodeRequest(2 ** 40, 'a', 'b', 1, null, hex('')))).to.deep.equal({ version: 1, kind: 0, id: 2 ** 40 })
    expect(peekHeader(hex('9a 00010000 01 19 0100 1b 001fffffffffffff'))).to.deep.equal({ version: 1, kind: 256, id: 2 ** 53 - 1 })
    expect(peekHeader(hex('83 01 03 1b 0020000000000000'))).to.equal(undefined)
    expect(peekHeader(hex('82 01 03'))).to.equal(undefined)
    expect(peekHeader(hex('83 01 03 61 78'))).to.equal(undefined)
    expect(peekHeader(hex('a3 01 03 07'))).to.equal(undefined)
    expect(peekHeader(hex('83 01'))).to.equal(undefined)
  })
})

describe('frames read in chunks', () => {
  const cancels = (count: number): Buffer => Buffer.concat(Array.from({ length: count }, (_, i) => encodeCancel(i)))

  it('scanFrame finds every envelope without decoding; readEnvelope reads any one of them', () => {
    const frame = Buffer.concat([encodeCancel(1), encodeReply(2, hex('f6')), hex('83 07 00 02'), encodeCancel(3)])
    const scan = scanFrame(frame)
    if (scan.kind === 'malformed') throw new Error(scan.reason)
    expect([...scan.ends]).to.deep.equal([4, 10, 14, 18])
    expect(readEnvelope(frame, scan, 3)).to.deep.equal({ kind: Kind.Cancel, id: 3 })
    expect(readEnvelope(frame, scan, 2)).to.deep.include({ kind: 'malformed', code: 'FAILED_PRECONDITION', id: 2 })
    expect(readEnvelope(frame, scan, 1)).to.deep.include({ kind: Kind.Reply, id: 2 })
    expect(() => readEnvelope(frame, scan, 4)).to.throw(RangeError)
    expect(scanFrame(hex('83 01 03'))).to.deep.include({ kind: 'malformed', id: undefined, code: 'INVALID_ARGUMENT' })
  })

  it('returns every envelope of a large frame, in order, in chunks of at most 256 envelopes or 32 KiB', () => {
    const frame = cancels(20_000)
    const chunks = [...readFrameInChunks(frame)]
    expect(chunks.every((chunk) => chunk.length <= DEFAULT_CHUNK_BUDGET.maxEnvelopes)).to.equal(true)
    const ids = chunks.flat().map((env) => env.id)
    expect(ids).to.deep.equal(Array.from({ length: 20_000 }, (_, i) => i))
    expect(parseFrame(frame).map((env) => env.id)).to.deep.equal(ids)

    // Large envelopes: a chunk stops at 32 KiB, and an envelope larger than that is a chunk of its own.
    const big = Buffer.concat([encodeReply(1, Buffer.alloc(20_000)), encodeReply(2, Buffer.alloc(20_000)), encodeReply(3, Buffer.alloc(50_000)), encodeCancel(4), encodeCancel(5)])
    expect([...readFrameInChunks(big)].map((chunk) => chunk.map((env) => env.id))).to.deep.equal([[1], [2], [3], [4, 5]])
    expect([...readFrameInChunks(big, DEFAULT_CBOR_LIMITS, { maxEnvelopes: 1, maxBytes: 1 << 20 })]).to.have.length(5)
  })

  it('decodes nothing before a chunk is asked for, and a frame that is not CBOR is one chunk of one Malformed', () => {
    const frame = Buffer.concat([encodeCancel(1), encodeCancel(2)])
    const chunks = readFrameInChunks(frame, DEFAULT_CBOR_LIMITS, { maxEnvelopes: 1, maxBytes: 1 << 20 })
    expect(chunks.next().value).to.deep.equal([{ kind: Kind.Cancel, id: 1 }])
    frame[7] = 9 // the second CANCEL's id, changed after the first chunk: it is read only now
    expect([...chunks]).to.deep.equal([[{ kind: Kind.Cancel, id: 9 }]])
    expect([...readFrameInChunks(hex('ff'))]).to.deep.equal([[{ kind: 'malformed', id: undefined, code: 'INVALID_ARGUMENT', reason: 'frame is not zrpc CBOR: indefinite lengths are not accepted at byte 0' }]])
  })

  it('reads each chunk of a hostile 4 MiB frame within tens of milliseconds', function () {
    this.timeout(10_000)
    // ERRORs whose details are 1360 one-entry maps with keys never seen before: the costliest
    // envelopes within the limits, about 4000 items each.
    let serial = 0
    const errors: Buffer[] = []
    for (let size = 0; size < 4 * 1024 * 1024 - 20_000; size += errors[errors.length - 1]!.length) {
      errors.push(encodeCbor([1, 2, errors.length, 'NOT_FOUND', '', Array.from({ length: 1360 }, () => ({ [`z${(serial++).toString(36)}`]: 0 }))]))
    }
    const frame = Buffer.concat(errors)
    let worst = 0
    let count = 0
    const chunks = readFrameInChunks(frame, { ...DEFAULT_CBOR_LIMITS, maxBytes: frame.length })
    for (;;) {
      const started = performance.now()
      const next = chunks.next()
      worst = Math.max(worst, performance.now() - started)
      if (next.done === true) break
      count += next.value.length
    }
    expect(count).to.equal(errors.length)
    // Measured 10-30 ms for the first chunk (the scan of the whole frame) and 9-13 ms for the others.
    expect(worst).to.be.below(250)
  })
})

describe('joined frames', () => {
  it('every peer accepts joined frames of MAX_JOINED_FRAME_BYTES: 64 KiB', () => {
    expect(MAX_JOINED_FRAME_BYTES).to.equal(64 * 1024)
    expect(MIN_MAX_MESSAGE_SIZE).to.equal(MAX_JOINED_FRAME_BYTES)
  })
})
