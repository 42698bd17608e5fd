import { expect } from 'chai'
import { encodeCbor } from '../../lib/codec/cbor.js'
import { Kind, MAX_STREAM_CREDIT, encodeCancel, encodeCredit, encodeError, encodeItem, encodePing, encodePong, encodeReply, encodeRequest, parseFrame } from '../../lib/codec/envelope.js'

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex')

// Frames written by hand from docs/protocol.md, byte by byte.
describe('zrpc/1 envelopes built by hand from the spec', () => {
  it('reads a REQUEST: [1, 0, 7, "calc", "add", 1000, {"k": "v"}, h\'a1616101\']', () => {
    const frame = hex('88 01 00 07 64 63616c63 63 616464 19 03e8 a1 616b 6176 44 a1616101')
    const [env] = parseFrame(frame)
    expect(env).to.deep.include({ kind: Kind.Request, id: 7, service: 'calc', method: 'add', timeoutMs: 1000, metadata: { k: 'v' } })
    expect(Buffer.from((env as { params: Uint8Array }).params).toString('hex')).to.equal('a1616101')
  })

  it('writes a REQUEST exactly as the spec lays it out', () => {
    const frame = encodeRequest(7, 'calc', 'add', 1000, null, hex('a1616101'))
    expect(frame.toString('hex')).to.equal('880100076463616c636361646419 03e8 f6 44a1616101'.replace(/\s/g, ''))
  })

  it('writes REQUEST and REPLY by hand exactly as the general CBOR encoder does, at every head size', () => {
    for (const n of [0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1]) {
      const payload = Buffer.alloc(n % 70_000, 7)
      for (const name of ['a', 'x'.repeat(24), 'é✓', 'y'.repeat(40)]) {
        const general = encodeCbor([1, 0, n, name, name, n, null, payload])
        expect(encodeRequest(n, name, name, n, null, payload).equals(general), `request ${n} ${name}`).to.equal(true)
      }
      expect(encodeReply(n, payload).equals(encodeCbor([1, 1, n, payload])), `reply ${n}`).to.equal(true)
    }
  })

  it('writes ids and budgets past 2^32 as 64-bit unsigned integers and reads them back', () => {
    for (const n of [2 ** 32, 2 ** 40 + 3, 2 ** 53 - 1]) {
      const frame = encodeRequest(n, 'a', 'b', n, null, Buffer.alloc(0))
      expect(frame.subarray(3, 12).toString('hex')).to.equal(`1b${n.toString(16).padStart(16, '0')}`)
      expect(parseFrame(frame)[0]).to.deep.include({ kind: Kind.Request, id: n, timeoutMs: n })
      expect(parseFrame(encodeReply(n, Buffer.alloc(1)))[0]).to.deep.include({ kind: Kind.Reply, id: n })
    }
    expect(parseFrame(hex('83 01 03 1b 0020000000000000'))[0]).to.deep.include({ kind: 'malformed', id: undefined })
  })

  it('writes and reads REPLY, ERROR and CANCEL', () => {
    expect(encodeReply(7, hex('03')).toString('hex')).to.equal('8401010741' + '03')
    expect(encodeCancel(7).toString('hex')).to.equal('830103' + '07')
    const err = encodeError(7, 'NOT_FOUND', 'nope')
    expect(err.toString('hex')).to.equal('86010207694e4f545f464f554e44646e6f7065f6')
    expect(parseFrame(err)).to.deep.equal([{ kind: Kind.Error, id: 7, code: 'NOT_FOUND', message: 'nope', details: null }])
    expect(parseFrame(encodeCancel(9))).to.deep.equal([{ kind: Kind.Cancel, id: 9 }])
  })

  it('reads several envelopes from one frame (a CBOR sequence)', () => {
    const frame = Buffer.concat([encodeCancel(1), encodeReply(2, hex('f6')), encodeCancel(3)])
    expect(parseFrame(frame).map((e) => [e.kind, 'id' in e ? e.id : undefined])).to.deep.equal([
      [Kind.Cancel, 1],
      [Kind.Reply, 2],
      [Kind.Cancel, 3],
    ])
  })

  it('ignores items a later minor version appends to REQUEST, REPLY, ERROR and CANCEL', () => {
    // [1, 0, 7, "calc", "add", 1000, null, h'a0', null, null, "extra", {"x": 1}]: items 8 and 9 are window and key
    const request = parseFrame(hex('8c 01 00 07 64 63616c63 63 616464 19 03e8 f6 41 a0 f6 f6 65 6578747261 a1 6178 01'))
    expect(request).to.have.length(1)
    expect(request[0]).to.deep.include({ kind: Kind.Request, id: 7, service: 'calc', method: 'add', timeoutMs: 1000, metadata: null })
    expect(parseFrame(hex('85 01 01 07 41 03 f5'))).to.deep.equal([{ kind: Kind.Reply, id: 7, result: hex('03') }])
    expect(parseFrame(hex('87 01 02 07 69 4e4f545f464f554e44 64 6e6f7065 f6 80'))).to.deep.equal([
      { kind: Kind.Error, id: 7, code: 'NOT_FOUND', message: 'nope', details: null },
    ])
    expect(parseFrame(hex('84 01 03 07 00'))).to.deep.equal([{ kind: Kind.Cancel, id: 7 }])
  })

  it('maps an error code it does not know to UNKNOWN, keeping the text', () => {
    const [env] = parseFrame(hex('86 01 02 01 63 464f4f 62 6869 f6'))
    expect(env).to.deep.include({ kind: Kind.Error, code: 'UNKNOWN', message: 'FOO: hi' })
  })
})

describe('envelopes a peer gets wrong', () => {
  const one = (frame: Buffer): ReturnType<typeof parseFrame>[number] => {
    const all = parseFrame(frame)
    expect(all).to.have.length(1)
    return all[0]!
  }

  it('another protocol version: FAILED_PRECONDITION, with the id so it can be answered', () => {
    expect(one(hex('83 02 03 05'))).to.deep.include({ kind: 'malformed', id: 5, code: 'FAILED_PRECONDITION' })
  })

  it('an unknown message kind: UNIMPLEMENTED with the id', () => {
    expect(one(hex('83 01 0f 05'))).to.deep.include({ kind: 'malformed', id: 5, code: 'UNIMPLEMENTED' })
  })

  it('reads PING and PONG (kinds 4 and 5, heartbeats), extra items ignored', () => {
    expect(one(hex('83 01 04 05'))).to.deep.equal({ kind: Kind.Ping, id: 5 })
    expect(one(hex('84 01 05 07 f6'))).to.deep.equal({ kind: Kind.Pong, id: 7 })
    expect(one(encodePing(9))).to.deep.equal({ kind: Kind.Ping, id: 9 })
    expect(one(encodePong(9))).to.deep.equal({ kind: Kind.Pong, id: 9 })
  })

  it('reads ITEM, CREDIT and END (kinds 6 to 8, streams); a mistyped one is malformed, not an unknown kind', () => {
    expect(one(hex('84 01 06 05 41 03'))).to.deep.equal({ kind: Kind.Item, id: 5, payload: hex('03') })
    expect(one(encodeItem(5, hex('03')))).to.deep.equal({ kind: Kind.Item, id: 5, payload: hex('03') })
    expect(one(hex('84 01 07 05 10'))).to.deep.equal({ kind: Kind.Credit, id: 5, n: 16 })
    expect(one(encodeCredit(5, 16))).to.deep.equal({ kind: Kind.Credit, id: 5, n: 16 })
    // More than the cap counts as the cap.
    expect(one(hex('84 01 07 05 1a 00100000'))).to.deep.equal({ kind: Kind.Credit, id: 5, n: MAX_STREAM_CREDIT })
    expect(one(hex('83 01 08 05'))).to.deep.equal({ kind: Kind.End, id: 5 })
    expect(one(hex('83 01 06 05'))).to.deep.include({ kind: 'malformed', id: 5, code: 'INVALID_ARGUMENT' }).and.not.to.have.property('unknownKind')
    expect(one(hex('84 01 07 05 20'))).to.deep.include({ kind: 'malformed', id: 5, code: 'INVALID_ARGUMENT' })
  })

  it("reads a REQUEST's window and key (items 8 and 9), and refuses bad ones", () => {
    const key = Buffer.from('k'.repeat(16))
    expect(one(encodeRequest(7, 'calc', 'add', 1000, null, hex('a0'), 16))).to.deep.include({ kind: Kind.Request, id: 7, window: 16 }).and.not.to.have.property('key')
    expect(one(encodeRequest(7, 'calc', 'add', 1000, null, hex('a0'), undefined, key))).to.deep.include({ id: 7, key }).and.not.to.have.property('window')
    expect(one(encodeRequest(7, 'calc', 'add', 1000, { m: 'v' }, hex('a0'), 4, key))).to.deep.include({ id: 7, window: 4, key, metadata: { m: 'v' } })
    // The hand writer writes what cbor-x writes.
    expect(encodeRequest(7, 'calc', 'add', 1000, null, hex('a0'), 4, key)).to.deep.equal(encodeCbor([1, 0, 7, 'calc', 'add', 1000, null, hex('a0'), 4, key]))
    expect(encodeRequest(7, 'calc', 'add', 1000, null, hex('a0'), undefined, key)).to.deep.equal(encodeCbor([1, 0, 7, 'calc', 'add', 1000, null, hex('a0'), null, key]))
    const base = [1, 0, 7, 'calc', 'add', 1000, null, hex('a0')]
    expect(one(encodeCbor([...base, 0]))).to.deep.include({ kind: 'malformed', id: 7, code: 'INVALID_ARGUMENT' })
    expect(one(encodeCbor([...base, 'x']))).to.deep.include({ kind: 'malformed', id: 7, code: 'INVALID_ARGUMENT' })
    expect(one(encodeCbor([...base, null, Buffer.alloc(65)]))).to.deep.include({ kind: 'malformed', id: 7, code: 'INVALID_ARGUMENT' })
    expect(one(encodeCbor([...base, null, Buffer.alloc(0)]))).to.deep.include({ kind: 'malformed', id: 7, code: 'INVALID_ARGUMENT' })
    expect(one(encodeCbor([...base, null, 'key']))).to.deep.include({ kind: 'malformed', id: 7, code: 'INVALID_ARGUMENT' })
  })

  it('an unknown message kind is marked unknownKind, so a client can ignore it instead of ending the call', () => {
    expect(one(hex('83 01 0a 05'))).to.deep.include({ kind: 'malformed', id: 5, code: 'UNIMPLEMENTED', unknownKind: 10 })
    expect(one(hex('85 01 0f 05 a0 40'))).to.deep.include({ kind: 'malformed', id: 5, code: 'UNIMPLEMENTED', unknownKind: 15 })
    expect(one(hex('83 01 18 64 05'))).to.deep.include({ id: 5, unknownKind: 100 })
    // Not an unknown kind: a kind that is not an unsigned integer, another version, no readable id.
    expect(one(hex('83 01 61 78 05'))).to.deep.include({ kind: 'malformed', id: 5, code: 'UNIMPLEMENTED' }).and.not.to.have.property('unknownKind')
    expect(one(hex('83 02 04 05'))).to.deep.include({ code: 'FAILED_PRECONDITION' }).and.not.to.have.property('unknownKind')
    expect(one(hex('83 01 04 20'))).to.deep.include({ id: undefined }).and.not.to.have.property('unknownKind')
    // Known kinds that are malformed are not unknown kinds either.
    expect(one(hex('84 01 01 05 00'))).not.to.have.property('unknownKind')
  })

  it('an ERROR whose code or message is not text, or that lacks items, still ends its call: UNKNOWN with a short message', () => {
    const error = (code: unknown, message: unknown, ...rest: unknown[]): ReturnType<typeof one> => one(encodeCbor([1, 2, 7, code, message, ...rest]))
    expect(error(5, 'boom', null)).to.deep.equal({ kind: Kind.Error, id: 7, code: 'UNKNOWN', message: '(code 5): boom', details: null })
    expect(error({ a: 1 }, 'boom', { why: 1 })).to.deep.equal({ kind: Kind.Error, id: 7, code: 'UNKNOWN', message: '(code a map): boom', details: { why: 1 } })
    expect(error(null, null, null)).to.deep.include({ kind: Kind.Error, id: 7, code: 'UNKNOWN', message: '(code null): (message null)' })
    expect(error('NOT_FOUND', ['x'], null)).to.deep.include({ kind: Kind.Error, id: 7, code: 'UNKNOWN', message: 'NOT_FOUND: (message an array of 1 item)' })
    // No details, then no message, then no code: the id is enough to end the call.
    expect(one(encodeCbor([1, 2, 7, 'NOT_FOUND', 'nope']))).to.deep.equal({ kind: Kind.Error, id: 7, code: 'NOT_FOUND', message: 'nope', details: null })
    expect(one(encodeCbor([1, 2, 7, 'NOT_FOUND']))).to.deep.include({ kind: Kind.Error, id: 7, code: 'UNKNOWN' })
    expect(one(encodeCbor([1, 2, 7]))).to.deep.include({ kind: Kind.Error, id: 7, code: 'UNKNOWN' })
    // A huge value is described, never copied.
    const huge = one(encodeCbor([1, 2, 7, Array.from({ length: 3000 }, (_, i) => `item ${i}`), 'x'.repeat(100_000), null]))
    expect(huge).to.deep.include({ kind: Kind.Error, id: 7, code: 'UNKNOWN' })
    expect((huge as { message: string }).message).to.match(/^\(code an array of 3000 items\): x{256}…$/)
    const longCode = one(encodeCbor([1, 2, 7, 'Y'.repeat(100_000), 'hi', null]))
    expect((longCode as { message: string }).message).to.equal(`${'Y'.repeat(256)}…: hi`)
    // Only an unreadable id leaves it Malformed.
    expect(one(encodeCbor([1, 2, 'seven', 5, 'boom', null]))).to.deep.include({ kind: 'malformed', id: undefined })
  })

  it('a request with a wrong field type: INVALID_ARGUMENT with the id', () => {
    // timeoutMs is text
    expect(one(hex('88 01 00 07 64 63616c63 63 616464 61 31 f6 40'))).to.deep.include({ kind: 'malformed', id: 7, code: 'INVALID_ARGUMENT' })
    // params inline instead of a byte string
    expect(one(hex('88 01 00 07 64 63616c63 63 616464 01 f6 a0'))).to.deep.include({ id: 7, code: 'INVALID_ARGUMENT' })
    // metadata with a number value
    expect(one(hex('88 01 00 07 64 63616c63 63 616464 01 a1 616b 01 40'))).to.deep.include({ id: 7, code: 'INVALID_ARGUMENT' })
    // too few items
    expect(one(hex('84 01 00 07 64 63616c63'))).to.deep.include({ id: 7, code: 'INVALID_ARGUMENT' })
  })

  it('no readable id: malformed without an id (dropped and counted by the receiver)', () => {
    expect(one(hex('83 01 00 20'))).to.deep.include({ kind: 'malformed', id: undefined })
    expect(one(hex('83 01 00 fb3ff8000000000000'))).to.deep.include({ id: undefined })
    expect(one(hex('a0'))).to.deep.include({ id: undefined })
    expect(one(hex('ffffff'))).to.deep.include({ kind: 'malformed', id: undefined, code: 'INVALID_ARGUMENT' })
    expect(one(hex('88 01 00'))).to.deep.include({ kind: 'malformed', id: undefined })
  })

  it('one bad envelope does not hide its neighbours in the same frame', () => {
    const frame = Buffer.concat([encodeCancel(1), hex('83 07 00 02'), encodeCancel(3)])
    expect(parseFrame(frame).map((e) => e.kind)).to.deep.equal([Kind.Cancel, 'malformed', Kind.Cancel])
  })
})

describe('ids and budgets of 2^32 and more', () => {
  // Found by the fuzz suite (test/fuzz/broker.test.ts): cbor-x writes numbers of 2^32 and more as
  // 64-bit floats, so every envelope written with it (ERROR, CANCEL, PING, PONG, CREDIT, ITEM, a
  // REQUEST with metadata) carried such an id as a float, which the protocol does not allow and the
  // broker (reading headers only) did not take: a worker's ERROR for such a call was dropped, the
  // caller waited for its deadline, and the worker's credit at the broker was lost for good.
  it('every encoder writes them as unsigned integers (major type 0, 8-byte argument)', () => {
    for (const id of [2 ** 32, 2 ** 40, Number.MAX_SAFE_INTEGER]) {
      const frames = [
        encodeError(id, 'INTERNAL', 'x'),
        encodeCancel(id),
        encodePing(id),
        encodePong(id),
        encodeCredit(id, 1),
        encodeItem(id, Buffer.alloc(1)),
        encodeReply(id, Buffer.alloc(1)),
        encodeRequest(id, 'calc', 'add', 1000, null, Buffer.alloc(1)),
        encodeRequest(id, 'calc', 'add', 1000, { k: 'v' }, Buffer.alloc(1)),
      ]
      for (const frame of frames) {
        expect(frame[3], `id head of ${frame.toString('hex')}`).to.equal(0x1b)
        expect(parseFrame(frame)[0]).to.include({ id })
      }
      const withMetadata = encodeRequest(1, 'calc', 'add', id, { k: 'v' }, Buffer.alloc(1))
      expect(withMetadata.indexOf(Buffer.from([0x1b]), 3), 'timeoutMs head').to.be.above(0)
      expect(withMetadata.includes(0xfb), 'no float in the envelope').to.equal(false)
      expect(parseFrame(withMetadata)[0]).to.include({ timeoutMs: id })
    }
  })
})
