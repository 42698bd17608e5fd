import { expect } from 'chai'
import { Encoder } from 'cbor-x'
import { CborProfileError, DEFAULT_CBOR_LIMITS, decodeCbor, encodeCbor, scanCbor, scanCborSequence } from '../../lib/codec/cbor.js'

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex')
const rejects = (bytes: Buffer, pattern: RegExp, limits = DEFAULT_CBOR_LIMITS): void => {
  const result = scanCbor(bytes, limits)
  expect(result, bytes.toString('hex')).to.be.instanceOf(CborProfileError)
  expect((result as CborProfileError).message).to.match(pattern)
}

describe('CBOR profile: scanning bytes from a peer', () => {
  it('accepts plain CBOR of every accepted type and returns the item end', () => {
    const value = { n: 1, neg: -5, big: 2 ** 40, f: 1.5, s: 'text', b: Buffer.from([1, 2, 3]), a: [true, false, null], m: { x: [1, [2, [3]]] } }
    const bytes = encodeCbor(value)
    expect(scanCbor(bytes)).to.deep.equal([bytes.length])
    expect(decodeCbor(bytes)).to.deep.equal(value)
  })

  it('splits a CBOR sequence into its items', () => {
    const bytes = Buffer.concat([encodeCbor([1]), encodeCbor('two'), encodeCbor({ three: 3 })])
    expect(scanCbor(bytes)).to.deep.equal([2, 6, bytes.length])
  })

  it('accepts half, single and double floats and undefined', () => {
    expect(scanCbor(hex('f93c00'))).to.deep.equal([3])
    expect(scanCbor(hex('fa3fc00000'))).to.deep.equal([5])
    expect(scanCbor(hex('fb3ff8000000000000'))).to.deep.equal([9])
    expect(scanCbor(hex('f7'))).to.deep.equal([1])
  })

  it('rejects the tags cbor-x would honour: 27 (objects), 28/29 (shared refs), 51 (packed), 64 (typed arrays), records', () => {
    rejects(hex('d81b 82 65 4572726f72 61 78'), /tag 27/)
    rejects(hex('d81c 81 d81d 00'), /tag 28/)
    rejects(hex('d833 80'), /tag 51/)
    rejects(hex('d840 42 0102'), /tag 64/)
    // cbor-x's record definition: tag 0xdfff (57343) followed by its structure.
    const records = new Encoder({ useRecords: true }).encode([{ a: 1 }, { a: 2 }])
    expect(scanCbor(records)).to.be.instanceOf(CborProfileError)
  })

  it('accepts a tag only when it is on the allow list', () => {
    const limits = { ...DEFAULT_CBOR_LIMITS, allowTags: new Set([1]) }
    expect(scanCbor(hex('c1 1a 5f5e1000'), limits)).to.deep.equal([6])
    rejects(hex('c1 1a 5f5e1000'), /tag 1 /)
  })

  it('rejects indefinite lengths and a stray break', () => {
    rejects(hex('9f 01 ff'), /indefinite/)
    rejects(hex('bf 6161 01 ff'), /indefinite/)
    rejects(hex('5f 41 01 ff'), /indefinite/)
    rejects(hex('ff'), /indefinite/)
  })

  it('rejects declared lengths larger than the bytes left, before allocating', () => {
    rejects(hex('9b ffffffffffffffff'), /exceeds/)
    rejects(hex('5a 7fffffff 00'), /exceeds/)
    rejects(hex('7a 00010000 61'), /exceeds/)
    rejects(hex('bb 0000000100000000'), /exceeds/)
  })

  it('rejects truncated input at every cut of a valid message', () => {
    const bytes = encodeCbor([1, 'abc', { k: [1.5, Buffer.from('xyz')] }, 2 ** 40])
    for (let cut = 1; cut < bytes.length; cut++) {
      expect(scanCbor(bytes.subarray(0, cut)), `cut at ${cut}`).to.be.instanceOf(CborProfileError)
    }
  })

  it('rejects nesting deeper than maxDepth, and accepts it at the limit', () => {
    const nest = (depth: number): unknown => (depth === 1 ? [] : [nest(depth - 1)])
    const limits = { ...DEFAULT_CBOR_LIMITS, maxDepth: 8 }
    expect(scanCbor(encodeCbor(nest(8)), limits)).to.be.an('array')
    rejects(encodeCbor(nest(9)) as Buffer, /nesting deeper than 8/, limits)
    // The limit counts levels, full or empty: 8 levels around a scalar fit, 9 do not.
    expect(scanCbor(Buffer.concat([Buffer.alloc(8, 0x81), hex('00')]), limits)).to.deep.equal([9])
    rejects(Buffer.concat([Buffer.alloc(9, 0x81), hex('00')]), /nesting deeper than 8/, limits)
    rejects(Buffer.concat([Buffer.alloc(8, 0x81), hex('a0')]), /nesting deeper than 8/, limits)
    // 100 000 nested arrays: must not recurse or throw a RangeError.
    rejects(Buffer.alloc(100_000, 0x81), /nesting/)
  })

  it('rejects input over maxBytes', () => {
    rejects(encodeCbor('x'.repeat(100)), /exceeds 50/, { ...DEFAULT_CBOR_LIMITS, maxBytes: 50 })
  })

  it('rejects an item of more than maxItems data items, counting containers, keys and values', () => {
    const limits = { ...DEFAULT_CBOR_LIMITS, maxItems: 5 }
    expect(scanCbor(encodeCbor([1, 2, 3, 4]), limits)).to.deep.equal([5])
    expect(scanCbor(encodeCbor({ a: 1, b: 2 }), limits)).to.deep.equal([7])
    rejects(encodeCbor([1, 2, 3, 4, 5]), /more than 5 data items/, limits)
    rejects(encodeCbor({ a: 1, b: [2] }), /more than 5 data items/, limits)
    // A tag and its content are two items.
    rejects(hex('84 c1 00 00 00 00'), /more than 5 data items/, { ...limits, allowTags: new Set([1]) })
    // The limit is per top-level item: a sequence of small items passes.
    expect(scanCbor(Buffer.concat([encodeCbor([1, 2, 3, 4]), encodeCbor([1, 2, 3, 4])]), limits)).to.deep.equal([5, 10])
  })

  it('rejects a map or an array longer than maxMapEntries or maxArrayLength', () => {
    const limits = { ...DEFAULT_CBOR_LIMITS, maxMapEntries: 2, maxArrayLength: 3 }
    expect(scanCbor(encodeCbor([{ a: 1, b: 2 }, [1, 2, 3]]), limits)).to.be.an('array')
    rejects(encodeCbor({ a: 1, b: 2, c: 3 }), /map of 3 entries exceeds 2/, limits)
    rejects(encodeCbor([[1, 2, 3, 4]]), /array of 4 items exceeds 3/, limits)
  })

  it('applies the item limits by default, and to limits written before they existed', () => {
    const zeros = (count: number): Buffer => Buffer.concat([hex('9a'), Buffer.from(Uint32Array.of(count).buffer).reverse(), Buffer.alloc(count)])
    expect(decodeCbor(zeros(99_999))).to.have.length(99_999)
    expect(() => decodeCbor(zeros(100_000))).to.throw(CborProfileError, /more than 100000 data items/)
    const oldStyle = { maxBytes: 1 << 30, maxDepth: 32, allowTags: new Set<number>() }
    rejects(zeros(200_000), /more than 100000 data items/, { ...oldStyle, maxArrayLength: Infinity })
    rejects(encodeCbor(Object.fromEntries(Array.from({ length: 50_001 }, (_, i) => [`k${i}`, 0]))), /map of 50001 entries exceeds 50000/, oldStyle)
  })

  it('scanCborSequence lists items over the item limits and still finds every item', () => {
    const limits = { ...DEFAULT_CBOR_LIMITS, maxItems: 5 }
    const bytes = Buffer.concat([encodeCbor([1]), encodeCbor([1, 2, 3, 4, 5, 6, 7]), encodeCbor({ big: [1, 2, 3, 4] }), encodeCbor(2)])
    const result = scanCborSequence(bytes, limits)
    if (result instanceof CborProfileError) throw result
    expect(result.ends).to.deep.equal([2, 10, 20, 21])
    expect([...result.overLimit.keys()]).to.deep.equal([1, 2])
    expect(result.overLimit.get(1)?.message).to.match(/more than 5 data items in one item at byte 7/)
    // A break of the profile itself still refuses the whole sequence.
    expect(scanCborSequence(Buffer.concat([bytes, hex('ff')]), limits)).to.be.instanceOf(CborProfileError)
  })

  it('rejects map keys that are not text or integers', () => {
    rejects(hex('a1 80 01'), /map key/)
    rejects(hex('a1 41 61 01'), /map key/)
    expect(scanCbor(hex('a1 01 02'))).to.deep.equal([3])
  })

  it('rejects simple values other than false, true, null, undefined, and reserved encodings', () => {
    rejects(hex('f0'), /simple value/)
    rejects(hex('f8 20'), /simple value/)
    rejects(hex('1c'), /reserved/)
    rejects(Buffer.alloc(0), /empty/)
  })

  it('survives random garbage without throwing', () => {
    let seed = 42
    const random = (): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff)
    for (let i = 0; i < 5000; i++) {
      const bytes = Buffer.alloc(1 + Math.floor(random() * 40))
      for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(random() * 256)
      const result = scanCbor(bytes)
      if (!(result instanceof CborProfileError)) {
        let start = 0
        for (const end of result) {
          expect(() => decodeCbor(bytes.subarray(start, end))).not.to.throw()
          start = end
        }
      }
    }
  })
})

describe('CBOR profile: what we write', () => {
  it('writes plain CBOR without record or map tags, and Buffers as byte strings', () => {
    expect(encodeCbor({ a: 1 }).toString('hex')).to.equal('a1616101')
    expect(encodeCbor([{ a: 1 }, { a: 2 }]).toString('hex')).to.equal('82a1616101a1616102')
    expect(encodeCbor(Buffer.from([1, 2])).toString('hex')).to.equal('420102')
    expect(encodeCbor(new Uint8Array([1, 2])).toString('hex')).to.equal('420102')
  })

  it('never rewrites an earlier result: a buffer handed to a socket stays as it was', () => {
    const kept: Array<[Buffer, string]> = []
    for (let i = 0; i < 20_000; i++) {
      const buf = encodeCbor({ i, pad: 'x'.repeat(i % 300) })
      if (i % 97 === 0) kept.push([buf, buf.toString('hex')])
    }
    for (const [buf, hexAtEncode] of kept) expect(buf.toString('hex')).to.equal(hexAtEncode)
  })
})
