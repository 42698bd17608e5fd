import { expect } from 'chai'
import { CborProfileError, DEFAULT_CBOR_LIMITS, decodeCbor, decodeChecked, encodeCbor, scanCbor, type CborLimits } from '../../lib/codec/cbor.js'
import {
  encodeCancel,
  encodeError,
  encodeReply,
  encodeRequest,
  parseFrame,
  readEnvelope,
  readEnvelopeWithCbor,
  scanFrame,
  type Envelope,
  type Malformed,
} from '../../lib/codec/envelope.js'
import { readCommonEnvelope } from '../../lib/codec/envelope-read.js'

// A small seeded generator (mulberry32), so a failure names a case that can be replayed.
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}

const IDS = [0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1]
const NAMES = ['', 'a', 'bench', 'echo', 'calc', 'add', 'x'.repeat(24), 'y'.repeat(48), 'z'.repeat(49), 'é✓', 'naïve', 'w'.repeat(300)]
const CODES = ['NOT_FOUND', 'INTERNAL', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOPE', '', 'cancelled']

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!
}

function randomMetadata(random: () => number): unknown {
  const r = random()
  if (r < 0.4) return null
  if (r < 0.5) return pick(random, [new Map([['__proto__', 'x']]), new Map([['a', 'b'], ['a', 'c']]), { a: 1 }, ['a'], 'text', 7, Buffer.alloc(2)])
  const out: Record<string, string> = {}
  const entries = r < 0.9 ? Math.floor(random() * 5) : Math.floor(random() * 80)
  for (let i = 0; i < entries; i++) out[`${pick(random, NAMES).slice(0, 20)}${i}`] = pick(random, NAMES)
  return out
}

/** One envelope of any kind, mostly the common shapes, some with extra or missing items. */
function randomEnvelope(random: () => number): Buffer {
  const id = random() < 0.9 ? pick(random, IDS) : pick(random, [-1, 2 ** 53, 1.5, 'id', null])
  const payload = encodeCbor({ data: 'x'.repeat(Math.floor(random() * 100)) })
  switch (Math.floor(random() * 10)) {
    case 9: {
      // Streams: a REQUEST with a window and/or a key, ITEM, CREDIT, and bad ones of each.
      const ok = typeof id === 'number' && id >= 0 && id <= 2 ** 53 - 1
      const window = pick(random, [undefined, 1, 16, 65_536, 70_000])
      const key = pick(random, [undefined, Buffer.alloc(16, 7), Buffer.alloc(64, 1)])
      return pick(random, [
        ok ? encodeRequest(id, pick(random, NAMES), pick(random, NAMES), pick(random, IDS), null, payload, window, key) : encodeCbor([1, 0, id, 'a', 'b', 1, null, payload, 4]),
        encodeCbor([1, 0, id, 'a', 'b', 5, null, payload, pick(random, [0, -1, 'w', null, 2 ** 40]), pick(random, [null, Buffer.alloc(0), Buffer.alloc(65), 'k', Buffer.alloc(3)])]),
        encodeCbor([1, 6, id, pick(random, [payload, 'text', null])]),
        encodeCbor([1, 7, id, pick(random, [0, 1, 8, 65_536, 100_000, -1, 'n'])]),
        encodeCbor([1, 8, id]),
      ])
    }
    case 0:
      return typeof id === 'number' && id >= 0 && id <= 2 ** 53 - 1
        ? encodeRequest(id, pick(random, NAMES), pick(random, NAMES), pick(random, IDS), null, payload)
        : encodeCbor([1, 0, id, 'a', 'b', 1, null, payload])
    case 1:
      return encodeCbor([1, 0, id, pick(random, NAMES), pick(random, NAMES), pick(random, IDS), randomMetadata(random), payload])
    case 2:
      return typeof id === 'number' && id >= 0 && id <= 2 ** 53 - 1 ? encodeReply(id, payload) : encodeCbor([1, 1, id, payload])
    case 3:
      return encodeCbor([1, 2, id, pick(random, CODES), pick(random, NAMES), ...pick(random, [[], [null], [{ issues: [1] }], [null, 'extra']])])
    case 4:
      return typeof id === 'number' && id >= 0 && id <= 2 ** 53 - 1 ? encodeCancel(id) : encodeCbor([1, 3, id])
    case 5:
      return encodeError(typeof id === 'number' && id >= 0 ? id : 0, pick(random, CODES) as 'INTERNAL', pick(random, NAMES))
    case 6:
      // Extra, missing or mistyped items.
      return encodeCbor(
        pick(random, [
          [1, 0, id, 'a', 'b', 5, null, payload, 'later'],
          [1, 0, id, 'a', 'b', 5, null],
          [1, 1, id, payload, 9],
          [1, 1, id, 'not bytes'],
          [1, 3, id, 'x'],
          [1, 0, id, 1, 'b', 5, null, payload],
          [1, 0, id, 'a', 'b', -5, null, payload],
          [1, 0, id, 'a', 'b', 5, null, 'text'],
          [1, 2, id],
        ]),
      )
    case 7:
      // Other versions and kinds.
      return encodeCbor([pick(random, [0, 2, -1, 'one', 1]), pick(random, [0, 1, 2, 3, 4, 15, 16, -1, 'k', 2 ** 40]), id, 'a', 'b', 1, null, payload])
    default:
      return encodeCbor(pick(random, [[], [1], [1, 0], { a: 1 }, 'text', 7, null, [1, 3, id, [[[1]]]]]))
  }
}

/** Flips, overwrites, cuts or inserts a byte or two. */
function mutate(random: () => number, frame: Buffer): Buffer {
  const out = Buffer.from(frame)
  const at = Math.floor(random() * out.length)
  switch (Math.floor(random() * 5)) {
    case 0:
      out[at] = out[at]! ^ (1 << Math.floor(random() * 8))
      return out
    case 1:
      out[at] = pick(random, [0x00, 0x01, 0x03, 0x18, 0x1b, 0x40, 0x60, 0x7f, 0x80, 0x9f, 0xa0, 0xbf, 0xc0, 0xf4, 0xf6, 0xf7, 0xf9, 0xff])
      return out
    case 2:
      return out.subarray(0, at)
    case 3:
      return Buffer.concat([out.subarray(0, at), Buffer.from([Math.floor(random() * 256)]), out.subarray(at)])
    default:
      return Buffer.concat([out.subarray(0, at), out.subarray(at + 1)])
  }
}

/** The reader before the hand reader: the scan, then cbor-x for every envelope the limits let through. */
function parseWithCbor(frame: Buffer, limits: CborLimits): Array<Envelope | Malformed> {
  const scan = scanFrame(frame, limits)
  if (scan.kind === 'malformed') return [scan]
  return scan.ends.map((end, i) => {
    const start = i === 0 ? 0 : scan.ends[i - 1]!
    return scan.overLimit.has(i) ? readEnvelope(frame, scan, i) : readEnvelopeWithCbor(frame.subarray(start, end))
  })
}

function expectSame(actual: Array<Envelope | Malformed>, expected: Array<Envelope | Malformed>, label: string): void {
  expect(actual, label).to.deep.equal(expected)
  actual.forEach((env, i) => {
    const ref = expected[i]!
    for (const field of ['params', 'result'] as const) {
      const a = (env as unknown as Record<string, Uint8Array | undefined>)[field]
      const b = (ref as unknown as Record<string, Uint8Array | undefined>)[field]
      if (a === undefined || b === undefined) continue
      // A view into the same frame bytes, of the same class, exactly as cbor-x gives it.
      expect(a.constructor, `${label} ${field} class`).to.equal(b.constructor)
      expect(a.buffer, `${label} ${field} buffer`).to.equal(b.buffer)
      expect(a.byteOffset, `${label} ${field} offset`).to.equal(b.byteOffset)
    }
  })
}

describe('the hand envelope reader against cbor-x, on generated and mutated frames', () => {
  const limits = DEFAULT_CBOR_LIMITS

  it('reads every generated envelope, alone and joined, exactly as cbor-x and toEnvelope do', function () {
    this.timeout(20_000)
    const random = rng(1)
    let byHand = 0
    for (let i = 0; i < 4000; i++) {
      const one = randomEnvelope(random)
      if (scanFrame(one, limits).kind === 'frame' && readCommonEnvelope(one) !== undefined) byHand++
      expectSame(parseFrame(one, limits), parseWithCbor(one, limits), `case ${i}: ${one.toString('hex')}`)
      const joined = Buffer.concat([one, randomEnvelope(random), randomEnvelope(random)])
      expectSame(parseFrame(joined, limits), parseWithCbor(joined, limits), `joined ${i}: ${joined.toString('hex')}`)
    }
    // The comparison means something only if the hand reader took a good share of the cases.
    expect(byHand).to.be.within(1200, 3000)
  })

  it('gives the same envelopes and the same Malformed verdicts on mutated frames', function () {
    this.timeout(20_000)
    const random = rng(2)
    for (let i = 0; i < 8000; i++) {
      let frame = randomEnvelope(random)
      for (let m = 1 + Math.floor(random() * 3); m > 0 && frame.length > 0; m--) frame = mutate(random, frame)
      expectSame(parseFrame(frame, limits), parseWithCbor(frame, limits), `case ${i}: ${frame.toString('hex')}`)
    }
  })

  it('gives the same results on a plain Uint8Array frame (params a Uint8Array view, not a Buffer)', () => {
    const random = rng(3)
    for (let i = 0; i < 500; i++) {
      const buf = randomEnvelope(random)
      const frame = new Uint8Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length))
      expectSame(parseFrame(frame as Buffer, limits), parseWithCbor(frame as Buffer, limits), `case ${i}`)
    }
  })
})

describe('decodeCbor against a scan and a cbor-x decode in place, on generated and mutated payloads', () => {
  /** decodeCbor before: the whole scan, the count, then cbor-x on the input itself. */
  function decodeInPlace(buf: Uint8Array, limits: CborLimits): unknown {
    const ends = scanCbor(buf, limits)
    if (ends instanceof CborProfileError) throw ends
    if (ends.length !== 1) throw new CborProfileError(`expected one item, found ${ends.length}`, ends[0] ?? 0)
    return decodeChecked(buf)
  }

  function outcome(fn: () => unknown): unknown {
    try {
      return { value: fn() }
    } catch (err) {
      return { error: (err as Error).message, name: (err as Error).name }
    }
  }

  const values = [
    { data: 'x'.repeat(64) },
    { data: Buffer.from('bytes'), n: [1, 2.5, -3, 2 ** 40] },
    [1, [2, [3, [4]]], { k: null, t: true }],
    'text é✓',
    { a: { b: { c: Buffer.alloc(3, 9) } } },
    2 ** 60,
    -1,
    new Map<number, string>([[1, 'one']]),
  ]

  it('gives the same value or the same error on every input', function () {
    this.timeout(20_000)
    const random = rng(4)
    const tight: CborLimits = { ...DEFAULT_CBOR_LIMITS, maxDepth: 3, maxItems: 20 }
    for (let i = 0; i < 5000; i++) {
      let buf = encodeCbor(pick(random, values))
      if (random() < 0.3) buf = Buffer.concat([buf, encodeCbor(pick(random, values))])
      for (let m = Math.floor(random() * 3); m > 0 && buf.length > 0; m--) buf = mutate(random, buf)
      // A subarray of a larger frame, as a payload arrives.
      const frame = Buffer.concat([Buffer.from([0x44]), buf, Buffer.from([0xf6])])
      const payload = frame.subarray(1, 1 + buf.length)
      const limits = random() < 0.5 ? DEFAULT_CBOR_LIMITS : tight
      expect(outcome(() => decodeCbor(payload, limits)), `case ${i}: ${buf.toString('hex')}`).to.deep.equal(outcome(() => decodeInPlace(payload, limits)))
    }
  })

  it('keeps byte strings in a decoded payload intact after later decodes', () => {
    const first = decodeCbor(encodeCbor({ data: Buffer.from('first') })) as { data: Uint8Array }
    decodeCbor(encodeCbor({ data: 'x'.repeat(100) }))
    decodeCbor(encodeCbor({ other: Buffer.from('second') }))
    expect(Buffer.from(first.data).toString()).to.equal('first')
  })

  it('decodes a payload larger than its scratch buffer in place', () => {
    const big = { data: 'y'.repeat(100_000) }
    expect(decodeCbor(encodeCbor(big))).to.deep.equal(big)
  })
})
