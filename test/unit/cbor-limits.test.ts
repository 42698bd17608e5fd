import { expect } from 'chai'
import { CborProfileError, DEFAULT_MAX_ITEMS, decodeCbor } from '../../lib/codec/cbor.js'

// A coarse guard on the time one payload can hold the event loop. The defaults were measured at
// 30-60 ms for the costliest accepted payload (lib/codec/cbor.ts); the bound here is several times
// that, so a loaded machine does not fail it, while an unbounded decode (0.6-2.4 s for 4 MiB) does.
const BOUND_MS = 300
const FOUR_MIB = 4 * 1024 * 1024

/** Writes CBOR heads into one buffer, so building a 4 MiB test input stays cheap. */
class Writer {
  private readonly buf = Buffer.alloc(FOUR_MIB + 64)
  private pos = 0
  head(major: number, n: number): this {
    const type = major << 5
    if (n < 24) this.buf[this.pos++] = type | n
    else if (n < 0x10000) {
      this.buf[this.pos++] = type | 25
      this.pos = this.buf.writeUInt16BE(n, this.pos)
    } else {
      this.buf[this.pos++] = type | 26
      this.pos = this.buf.writeUInt32BE(n, this.pos)
    }
    return this
  }
  text(s: string): this {
    this.head(3, Buffer.byteLength(s))
    this.pos += this.buf.write(s, this.pos)
    return this
  }
  get length(): number {
    return this.pos
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.pos)
  }
}

// Keys this process has never seen: each gives V8 a new object shape, the costliest item for cbor-x.
let keySerial = 0
const freshKey = (): string => `q${(keySerial++).toString(36)}`

const timed = (bytes: Buffer): { ms: number; outcome: unknown } => {
  const start = performance.now()
  let outcome: unknown
  try {
    outcome = decodeCbor(bytes)
  } catch (err) {
    outcome = err
  }
  return { ms: performance.now() - start, outcome }
}

describe('CBOR limits: one payload holds the event loop only briefly', function () {
  this.timeout(10_000)

  it(`decodes the costliest payload the defaults accept (${DEFAULT_MAX_ITEMS} items of small maps with new keys) within ${BOUND_MS} ms`, () => {
    const perMap = 8
    const maps = Math.floor((DEFAULT_MAX_ITEMS - 1) / (1 + 2 * perMap))
    const w = new Writer().head(4, maps)
    for (let i = 0; i < maps; i++) {
      w.head(5, perMap)
      for (let k = 0; k < perMap; k++) w.text(freshKey()).head(0, 0)
    }
    const { ms, outcome } = timed(w.bytes())
    expect(outcome).to.be.an('array').with.length(maps)
    expect(ms).to.be.below(BOUND_MS)
  })

  it(`refuses 4 MiB of empty arrays, of one-entry maps and a map of 500 000 new keys within ${BOUND_MS} ms each`, () => {
    const emptyArrays = new Writer().head(4, FOUR_MIB - 5)
    for (let i = 0; i < FOUR_MIB - 5; i++) emptyArrays.head(4, 0)
    const smallMaps = new Writer().head(4, 1_000_000)
    for (let i = 0; i < 1_000_000; i++) smallMaps.head(5, 1).text('a').head(0, 0)
    const bigMap = new Writer().head(5, 500_000)
    for (let i = 0; i < 500_000; i++) bigMap.text(freshKey()).head(0, 0)
    for (const w of [emptyArrays, smallMaps, bigMap]) {
      expect(w.length).to.be.at.most(FOUR_MIB)
      const { ms, outcome } = timed(w.bytes())
      expect(outcome).to.be.instanceOf(CborProfileError)
      expect(ms).to.be.below(BOUND_MS)
    }
  })

  it(`refuses 4 MiB of short arrays that are each within the length limit, by the item count, within ${BOUND_MS} ms`, () => {
    // 60 000 arrays of 60 zeros: no single container is long, the item count is what stops it.
    const w = new Writer().head(4, 60_000)
    for (let i = 0; i < 60_000; i++) {
      w.head(4, 60)
      for (let k = 0; k < 60; k++) w.head(4, 0)
    }
    const { ms, outcome } = timed(w.bytes())
    expect((outcome as Error).message).to.match(/more than 100000 data items/)
    expect(ms).to.be.below(BOUND_MS)
  })
})
