/**
 * Issue 8: what would payload codecs compiled from a TypeBox object schema save per call?
 *
 * A PROTOTYPE, not library code: a compiler for `Type.Object({...})` whose properties are all required
 * String, Number, Integer or Boolean (no other keywords), giving
 * - an encoder that writes exactly the bytes `encodeCbor` (cbor-x) writes, falling back to it for any
 *   value it does not expect (other key order, extra keys, wrong types, not a plain object);
 * - a decoder that reads those bytes straight into the typed object while checking the CBOR profile
 *   and the schema in the same pass, and hands anything it does not expect (other key order, extra or
 *   missing keys, wrong types, 8-byte integers, invalid UTF-8, malformed or over-limit bytes) to
 *   today's path (`decodeCbor` + the compiled TypeBox validator), which gives the verdict. So a
 *   failure result always comes from today's path, with today's issues, and the fast path can only
 *   accept what today's path accepts, with the same value.
 *
 * Self-checks first (byte equality, decode agreement on valid and mutated inputs), then timings with
 * the method of codec.ts (fresh Buffers, gc between rounds, min and median ns per op).
 *
 *   npx tsc -p tsconfig.json && node --expose-gc dist/benchmarks/micro/payload-codec.js [rounds]
 *
 * Figures only mean something side by side in one run.
 */
import { isUtf8 } from 'node:buffer'
import { Type, type TObject, type TSchema } from 'typebox'
import { Compile } from 'typebox/compile'
import { DEFAULT_CBOR_LIMITS, decodeCbor, encodeCbor, type CborLimits } from '../../lib/codec/cbor.js'

const rounds = Number(process.argv[2] ?? 5)

type DecodeResult = { ok: true; value: unknown } | { ok: false; error: string }

interface PayloadCodec {
  encode(value: unknown): Buffer
  decode(buf: Uint8Array, limits?: CborLimits): DecodeResult
}

const STRING = 0
const NUMBER = 1
const INTEGER = 2
const BOOLEAN = 3

interface Field {
  readonly key: string
  /** The key as cbor-x writes it: text string head and UTF-8 bytes. */
  readonly keyBytes: Buffer
  readonly kind: number
}

/** Today's path: profile scan + cbor-x decode, then the compiled validator (as lib/service/validator.ts). */
function generalDecoder(schema: TSchema): (buf: Uint8Array, limits: CborLimits) => DecodeResult {
  const validator = Compile(schema)
  return (buf, limits) => {
    let value: unknown
    try {
      value = decodeCbor(buf, limits)
    } catch (err) {
      return { ok: false, error: (err as Error).message }
    }
    if (validator.Check(value)) return { ok: true, value }
    const first = validator.Errors(value)[0]
    return { ok: false, error: first === undefined ? 'invalid' : `${first.instancePath || '/'} ${first.message}` }
  }
}

// The compiled encoder's own slab, as cbor-x's: results are views, each appended, never rewritten.
let slab = Buffer.allocUnsafeSlow(1024 * 1024)
let slabPos = 0

/** Where the last counted call went, for the self-checks. */
const stats = { fastDecode: 0, slowDecode: 0, fastEncode: 0, slowEncode: 0 }
let counting = false

/** Compiles `schema`, or returns undefined for a schema outside the prototype's reach. */
function compilePayloadCodec(schema: TObject): PayloadCodec | undefined {
  const props = schema.properties as Record<string, TSchema & { type?: unknown }>
  const required = new Set((schema.required as string[] | undefined) ?? [])
  const fields: Field[] = []
  for (const [key, prop] of Object.entries(props)) {
    // Integer-like keys would be reordered by Object.keys, __proto__ is special: not for the prototype.
    if (!required.has(key) || key === '__proto__' || /^(0|[1-9]\d*)$/.test(key)) return undefined
    if (Object.keys(prop).length !== 1) return undefined
    const kind = { string: STRING, number: NUMBER, integer: INTEGER, boolean: BOOLEAN }[String(prop.type)]
    if (kind === undefined) return undefined
    fields.push({ key, keyBytes: Buffer.from(encodeCbor(key)), kind })
  }
  if (fields.length >= 24 || required.size !== fields.length) return undefined
  const n = fields.length
  const mapHead = 0xa0 | n
  const keyBytesTotal = fields.reduce((s, f) => s + f.keyBytes.length, 0)
  const general = generalDecoder(schema)
  const values: unknown[] = new Array<unknown>(n).fill(undefined)
  // The decoded object built with a literal, so every result shares one hidden class (cbor-x's too).
  const build = new Function('v', `return {${fields.map((f, i) => `${JSON.stringify(f.key)}: v[${i}]`).join(', ')}}`) as (v: unknown[]) => unknown

  function encode(value: unknown): Buffer {
    if (typeof value !== 'object' || value === null || value.constructor !== Object) return slowEncode(value)
    const keys = Object.keys(value)
    if (keys.length !== n) return slowEncode(value)
    const obj = value as Record<string, unknown>
    let max = 1 + keyBytesTotal
    for (let i = 0; i < n; i++) {
      const f = fields[i]!
      if (keys[i] !== f.key) return slowEncode(value)
      const v = obj[f.key]
      switch (f.kind) {
        case STRING:
          if (typeof v !== 'string') return slowEncode(value)
          max += 5 + v.length * 3
          break
        case BOOLEAN:
          if (typeof v !== 'boolean') return slowEncode(value)
          max += 1
          break
        default:
          if (typeof v !== 'number') return slowEncode(value)
          max += 9
      }
    }
    if (counting) stats.fastEncode++
    if (slabPos + max > slab.length) {
      slab = Buffer.allocUnsafeSlow(Math.max(1024 * 1024, max))
      slabPos = 0
    }
    const t = slab
    const start = slabPos
    let p = start
    t[p++] = mapHead
    for (let i = 0; i < n; i++) {
      const f = fields[i]!
      f.keyBytes.copy(t, p)
      p += f.keyBytes.length
      const v = obj[f.key]
      if (f.kind === STRING) p = writeString(t, p, v as string)
      else if (f.kind === BOOLEAN) t[p++] = v ? 0xf5 : 0xf4
      else p = writeNumber(t, p, v as number)
    }
    slabPos = p
    return t.subarray(start, p)
  }

  function slowEncode(value: unknown): Buffer {
    if (counting) stats.slowEncode++
    return encodeCbor(value)
  }

  function decode(buf: Uint8Array, limits: CborLimits = DEFAULT_CBOR_LIMITS): DecodeResult {
    const end = buf.length
    // Limits a flat map of n scalars could hit; anything odd goes to the general path.
    if (end > limits.maxBytes || limits.maxDepth < 1 || (limits.maxItems ?? 1e9) < 1 + 2 * n || (limits.maxMapEntries ?? 1e9) < n) {
      return slow(buf, limits)
    }
    if (end === 0 || buf[0] !== mapHead) return slow(buf, limits)
    let p = 1
    for (let i = 0; i < n; i++) {
      const f = fields[i]!
      const kb = f.keyBytes
      const kl = kb.length
      if (p + kl > end) return slow(buf, limits)
      for (let j = 0; j < kl; j++) if (buf[p + j] !== kb[j]) return slow(buf, limits)
      p += kl
      if (p >= end) return slow(buf, limits)
      const initial = buf[p++]!
      const major = initial >> 5
      const info = initial & 0x1f
      if (f.kind === BOOLEAN) {
        if (initial === 0xf5) values[i] = true
        else if (initial === 0xf4) values[i] = false
        else return slow(buf, limits)
        continue
      }
      if (f.kind === STRING) {
        if (major !== 3) return slow(buf, limits)
        let len: number
        if (info < 24) len = info
        else if (info === 24 && p + 1 <= end) len = buf[p++]!
        else if (info === 25 && p + 2 <= end) {
          len = (buf[p]! << 8) | buf[p + 1]!
          p += 2
        } else if (info === 26 && p + 4 <= end) {
          len = buf[p]! * 0x1000000 + ((buf[p + 1]! << 16) | (buf[p + 2]! << 8) | buf[p + 3]!)
          p += 4
        } else return slow(buf, limits)
        if (len > end - p) return slow(buf, limits)
        const s = readText(buf, p, len)
        if (s === undefined) return slow(buf, limits)
        values[i] = s
        p += len
        continue
      }
      // NUMBER or INTEGER
      let v: number
      if (major === 0 || major === 1) {
        let arg: number
        if (info < 24) arg = info
        else if (info === 24 && p + 1 <= end) arg = buf[p++]!
        else if (info === 25 && p + 2 <= end) {
          arg = (buf[p]! << 8) | buf[p + 1]!
          p += 2
        } else if (info === 26 && p + 4 <= end) {
          arg = buf[p]! * 0x1000000 + ((buf[p + 1]! << 16) | (buf[p + 2]! << 8) | buf[p + 3]!)
          p += 4
        } else return slow(buf, limits) // 8-byte integers may be bigints: the general path decides
        v = major === 0 ? arg : -1 - arg
      } else if (initial === 0xfb && p + 8 <= end) {
        v = readF64(buf, p)
        p += 8
      } else if (initial === 0xfa && p + 4 <= end) {
        v = readF32(buf, p)
        p += 4
      } else if (initial === 0xf9 && p + 2 <= end) {
        v = half((buf[p]! << 8) | buf[p + 1]!)
        p += 2
      } else return slow(buf, limits)
      if (f.kind === INTEGER ? !Number.isInteger(v) : !Number.isFinite(v)) return slow(buf, limits)
      values[i] = v
    }
    if (p !== end) return slow(buf, limits)
    if (counting) stats.fastDecode++
    return { ok: true, value: build(values) }
  }

  function slow(buf: Uint8Array, limits: CborLimits): DecodeResult {
    if (counting) stats.slowDecode++
    return general(buf, limits)
  }

  return { encode, decode }
}

/** cbor-x's text string writer: minimal head; its own JS loop below 64 UTF-16 units, utf8Write above. */
function writeString(t: Buffer, p: number, value: string): number {
  const strLength = value.length
  const headerSize = strLength < 0x20 ? 1 : strLength < 0x100 ? 2 : strLength < 0x10000 ? 3 : 5
  let length: number
  if (strLength < 0x40) {
    let q = p + headerSize
    for (let i = 0; i < strLength; i++) {
      let c1 = value.charCodeAt(i)
      let c2: number
      if (c1 < 0x80) t[q++] = c1
      else if (c1 < 0x800) {
        t[q++] = (c1 >> 6) | 0xc0
        t[q++] = (c1 & 0x3f) | 0x80
      } else if ((c1 & 0xfc00) === 0xd800 && ((c2 = value.charCodeAt(i + 1)) & 0xfc00) === 0xdc00) {
        c1 = 0x10000 + ((c1 & 0x03ff) << 10) + (c2 & 0x03ff)
        i++
        t[q++] = (c1 >> 18) | 0xf0
        t[q++] = ((c1 >> 12) & 0x3f) | 0x80
        t[q++] = ((c1 >> 6) & 0x3f) | 0x80
        t[q++] = (c1 & 0x3f) | 0x80
      } else {
        t[q++] = (c1 >> 12) | 0xe0
        t[q++] = ((c1 >> 6) & 0x3f) | 0x80
        t[q++] = (c1 & 0x3f) | 0x80
      }
    }
    length = q - p - headerSize
  } else {
    length = t.write(value, p + headerSize, strLength * 3, 'utf8')
  }
  if (length < 0x18) {
    t[p++] = 0x60 | length
  } else if (length < 0x100) {
    if (headerSize < 2) t.copyWithin(p + 2, p + 1, p + 1 + length)
    t[p++] = 0x78
    t[p++] = length
  } else if (length < 0x10000) {
    if (headerSize < 3) t.copyWithin(p + 3, p + 2, p + 2 + length)
    t[p++] = 0x79
    t[p++] = length >> 8
    t[p++] = length & 0xff
  } else {
    if (headerSize < 5) t.copyWithin(p + 5, p + 3, p + 3 + length)
    t[p++] = 0x7a
    t.writeUInt32BE(length, p)
    p += 4
  }
  return p + length
}

/** cbor-x's number writer with its options (no float32, no alwaysUseFloat). */
function writeNumber(t: Buffer, p: number, value: number): number {
  if (value >>> 0 === value) {
    if (value < 0x18) t[p++] = value
    else if (value < 0x100) {
      t[p++] = 0x18
      t[p++] = value
    } else if (value < 0x10000) {
      t[p++] = 0x19
      t[p++] = value >> 8
      t[p++] = value & 0xff
    } else {
      t[p++] = 0x1a
      t.writeUInt32BE(value, p)
      p += 4
    }
  } else if (value >> 0 === value) {
    if (value >= -0x18) t[p++] = 0x1f - value
    else if (value >= -0x100) {
      t[p++] = 0x38
      t[p++] = ~value
    } else if (value >= -0x10000) {
      t[p++] = 0x39
      t.writeUInt16BE(~value & 0xffff, p)
      p += 2
    } else {
      t[p++] = 0x3a
      t.writeUInt32BE(~value >>> 0, p)
      p += 4
    }
  } else if (value < 0 && value >= -0x100000000 && Math.floor(value) === value) {
    t[p++] = 0x3a
    t.writeUInt32BE(-1 - value, p)
    p += 4
  } else {
    t[p++] = 0xfb
    t.writeDoubleBE(value, p)
    p += 8
  }
  return p
}

const f64 = new Float64Array(1)
const f64b = new Uint8Array(f64.buffer)
const f32 = new Float32Array(1)
const f32b = new Uint8Array(f32.buffer)
function readF64(b: Uint8Array, p: number): number {
  for (let i = 0; i < 8; i++) f64b[7 - i] = b[p + i]!
  return f64[0]!
}
function readF32(b: Uint8Array, p: number): number {
  for (let i = 0; i < 4; i++) f32b[3 - i] = b[p + i]!
  return f32[0]!
}
function half(h: number): number {
  const e = (h >> 10) & 0x1f
  const m = h & 0x3ff
  const v = e === 0 ? m * 2 ** -24 : e === 31 ? (m === 0 ? Infinity : NaN) : (m + 1024) * 2 ** (e - 25)
  return h & 0x8000 ? -v : v
}

/** Text at b[p, p + len), or undefined for invalid UTF-8 (left to cbor-x, whose replacement rules we do not copy). */
function readText(b: Uint8Array, p: number, len: number): string | undefined {
  if (len <= 32) {
    let ascii = true
    for (let i = 0; i < len; i++) if (b[p + i]! >= 0x80) ascii = false
    if (ascii) {
      // Short ASCII: one code at a time is cheaper than a native call.
      let s = ''
      for (let i = 0; i < len; i++) s += String.fromCharCode(b[p + i]!)
      return s
    }
  }
  const sub = Buffer.from(b.buffer, b.byteOffset + p, len)
  if (!isUtf8(sub)) return undefined
  return sub.toString('utf8')
}

// ---------------------------------------------------------------------------------------------------
// Self-checks

const DataSchema = Type.Object({ data: Type.String() })
const PairSchema = Type.Object({ a: Type.Number(), b: Type.Number() })
const MixedSchema = Type.Object({ id: Type.Integer(), name: Type.String(), ok: Type.Boolean(), x: Type.Number() })

let seed = 12345
function rand(): number {
  seed = (seed * 1103515245 + 12345) >>> 0
  return seed / 2 ** 32
}
function pick<T>(xs: readonly T[]): T {
  return xs[Math.floor(rand() * xs.length)]!
}

const edgeNumbers = [
  0, -0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 64, -1, -23, -24, -25, -255,
  -256, -257, -65535, -65536, -65537, -(2 ** 31), -(2 ** 31) - 1, -(2 ** 32) + 1, -(2 ** 32), -(2 ** 32) - 1, -(2 ** 53), 0.5, -0.5, 1.5,
  0.1, 1e300, -1e300, 5e-324, 3.4028234663852886e38, 65504, NaN, Infinity, -Infinity,
]
function randomNumber(): number {
  const r = rand()
  if (r < 0.3) return pick(edgeNumbers)
  if (r < 0.5) return Math.floor(rand() * 2 ** Math.floor(rand() * 54)) * (rand() < 0.5 ? -1 : 1)
  if (r < 0.7) return (rand() - 0.5) * 10 ** Math.floor(rand() * 40 - 20)
  f64b.forEach((_, i) => (f64b[i] = Math.floor(rand() * 256)))
  return f64[0]!
}
const alphabet = ['a', 'Z', '0', ' ', '~', '\x00', '\x7f', 'é', 'ß', '\u07ff', '\u0800', '中', '\uffff', '😀', '\ud800', '\udc00']
function randomString(): string {
  const len = pick([0, 1, 5, 22, 23, 24, 25, 31, 32, 33, 63, 64, 65, 100, 255, 256, 300, 4096, 65535, 65536, 70000])
  const asciiOnly = rand() < 0.5
  let s = ''
  for (let i = 0; i < len; i++) s += asciiOnly ? String.fromCharCode(32 + Math.floor(rand() * 95)) : pick(alphabet)
  return s
}

function sameValue(x: unknown, y: unknown): boolean {
  if (typeof x !== 'object' || typeof y !== 'object' || x === null || y === null) return Object.is(x, y)
  const kx = Object.keys(x)
  const ky = Object.keys(y)
  if (kx.length !== ky.length || Object.getPrototypeOf(x) !== Object.getPrototypeOf(y)) return false
  for (let i = 0; i < kx.length; i++) {
    if (kx[i] !== ky[i]) return false
    if (!sameValue((x as Record<string, unknown>)[kx[i]!], (y as Record<string, unknown>)[ky[i]!])) return false
  }
  return true
}

function sameResult(a: DecodeResult, b: DecodeResult): boolean {
  return a.ok === b.ok && (!a.ok || (b.ok && sameValue(a.value, b.value)))
}

function selfCheck(): boolean {
  let failures = 0
  let encodeChecks = 0
  let decodeChecks = 0
  let mutatedChecks = 0
  let mutatedAcceptedByBoth = 0
  const fail = (what: string): void => {
    if (failures++ < 10) console.log(`SELF-CHECK FAILED: ${what}`)
  }
  counting = true
  const cases: [TObject, () => Record<string, unknown>][] = [
    [DataSchema, () => ({ data: randomString() })],
    [PairSchema, () => ({ a: randomNumber(), b: randomNumber() })],
    [MixedSchema, () => ({ id: randomNumber(), name: randomString(), ok: rand() < 0.5, x: randomNumber() })],
  ]
  for (const [schema, gen] of cases) {
    const codec = compilePayloadCodec(schema)!
    const general = generalDecoder(schema)
    const samples: Buffer[] = []
    for (let k = 0; k < 3000; k++) {
      let value: unknown = gen()
      const r = rand()
      // Values the encoder must pass to cbor-x: other key order, extra key, wrong type, not plain.
      if (r < 0.03) value = Object.fromEntries(Object.entries(value as object).reverse())
      else if (r < 0.06) value = { ...(value as object), extra: 1 }
      else if (r < 0.09) value = { ...(value as object), [Object.keys(value as object)[0]!]: pick([null, 1, 'x', true, [1]]) }
      else if (r < 0.1) value = Object.assign(Object.create(null) as object, value)
      const mine = Buffer.from(codec.encode(value))
      const theirs = encodeCbor(value)
      encodeChecks++
      if (!mine.equals(theirs)) fail(`encode ${JSON.stringify(value)?.slice(0, 80)}: ${mine.toString('hex').slice(0, 60)} vs ${theirs.toString('hex').slice(0, 60)}`)
      const a = codec.decode(mine)
      const b = general(mine, DEFAULT_CBOR_LIMITS)
      decodeChecks++
      if (!sameResult(a, b)) fail(`decode ${mine.toString('hex').slice(0, 80)}`)
      if (mine.length < 400) samples.push(mine)
    }
    // Mutations: every truncation, byte flips at every position, inserted and appended bytes, with
    // tight limits too; the compiled decoder must agree with today's path on every one.
    const tight: CborLimits = { ...DEFAULT_CBOR_LIMITS, maxBytes: 40, maxItems: 5 }
    const check = (m: Buffer, limits: CborLimits = DEFAULT_CBOR_LIMITS): void => {
      const a = codec.decode(m, limits)
      const b = general(m, limits)
      mutatedChecks++
      if (a.ok && b.ok) mutatedAcceptedByBoth++
      if (!sameResult(a, b)) fail(`mutated ${m.toString('hex').slice(0, 80)}: fast ${a.ok} general ${b.ok}`)
    }
    const interesting = [0x00, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1f, 0x20, 0x3b, 0x40, 0x5f, 0x60, 0x7f, 0x80, 0x9f, 0xa0, 0xbf, 0xc0, 0xd8, 0xe0, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xff]
    for (const s of samples.slice(0, 150)) {
      check(s, tight)
      for (let i = 0; i < s.length; i++) {
        check(s.subarray(0, i))
        for (const byte of [...interesting, s[i]! ^ 1, s[i]! ^ 0x20, s[i]! ^ 0x80, Math.floor(rand() * 256)]) {
          const m = Buffer.from(s)
          m[i] = byte
          check(m)
        }
        check(Buffer.concat([s.subarray(0, i), Buffer.of(Math.floor(rand() * 256)), s.subarray(i)]))
      }
      check(Buffer.concat([s, Buffer.of(0x00)]))
      check(Buffer.concat([s, s]))
    }
    // Hand-made: other key order, extra and missing keys, floats of every size, 8-byte integers,
    // non-minimal heads, indefinite lengths, tags.
    for (const hex of [
      'a2616201616101', 'a3616101616202616303', 'a1616101', 'a26161f93c00616201', 'a26161fa3fc00000616201', 'a26161fb3ff8000000000000616201',
      'a261611b0000000000000001616201', 'a261613b001fffffffffffff616201', 'a261611b0020000000000000616201', 'a2786161016162f97e00',
      'a26161016162f97c00', 'a26161016162fbfff0000000000000', 'bf6161016162f4ff', 'a26161c101616201', 'a1646461746160', 'a16464617461780161',
      'a164646174617f6161ff', 'a1646461746162c328', 'a16464617461d8186161', 'a4626964fb4000000000000000646e616d6560626f6bf5617800',
      'a4626964fa40000000646e616d6560626f6bf5617800', 'a4626964f93e00646e616d6560626f6bf5617800', 'a462696401646e616d6560626f6bf6617800',
    ]) {
      check(Buffer.from(hex, 'hex'))
    }
  }
  counting = false
  console.log(
    `self-checks: ${encodeChecks} encodes byte-compared with encodeCbor (${stats.fastEncode} compiled, ${stats.slowEncode} passed to cbor-x), ` +
      `${decodeChecks} valid decodes and ${mutatedChecks} mutated/hand-made inputs compared with decodeCbor+validator ` +
      `(${mutatedAcceptedByBoth} mutated accepted by both; decoder fast path ${stats.fastDecode}, fallback ${stats.slowDecode}): ` +
      (failures === 0 ? 'all agree' : `${failures} FAILURES`),
  )
  return failures === 0
}

// ---------------------------------------------------------------------------------------------------
// Timings

function copies(payload: Uint8Array): Buffer[] {
  return Array.from({ length: Math.min(20_000, Math.floor(2 ** 26 / payload.length)) }, () => Buffer.from(payload))
}

function time(fresh: () => unknown[], fn: (x: never) => unknown): { median: number; min: number } {
  let sink = 0
  const results: number[] = []
  for (let r = -2; r < rounds; r++) {
    const inputs = fresh()
    ;(globalThis as { gc?: () => void }).gc?.()
    const t0 = process.hrtime.bigint()
    for (const x of inputs) sink ^= fn(x as never) === undefined ? 1 : 0
    if (r >= 0) results.push(Number(process.hrtime.bigint() - t0) / inputs.length)
  }
  results.sort((a, b) => a - b)
  if (sink < 0) console.log(sink)
  return { median: results[results.length >> 1]!, min: results[0]! }
}

function row(label: string, before: { median: number; min: number }, after: { median: number; min: number }): void {
  const f = (t: { median: number; min: number }): string => `${t.median.toFixed(0).padStart(6)} (${t.min.toFixed(0).padStart(5)})`
  console.log(`${label.padEnd(34)} ${f(before)}  ${f(after)}  ${(before.median / after.median).toFixed(2).padStart(5)}x  ${(before.median - after.median).toFixed(0).padStart(6)}`)
}

if (!selfCheck()) process.exitCode = 1
else {
  const shapes: [string, TObject, () => Record<string, unknown>][] = [
    ['{ data } 64 B', DataSchema, () => ({ data: 'x'.repeat(64) })],
    ['{ data } 4 KiB', DataSchema, () => ({ data: 'x'.repeat(4096) })],
    ['{ a, b } ints', PairSchema, () => ({ a: Math.floor(rand() * 1e6), b: -Math.floor(rand() * 1000) })],
    ['{ a, b } floats', PairSchema, () => ({ a: rand() * 1e6, b: rand() })],
  ]
  console.log(`ns/op, median (min) of ${rounds} rounds; before = today's path, after = compiled`)
  console.log(`${'op'.padEnd(34)} ${'before'.padStart(14)}  ${'after'.padStart(14)}  ${'ratio'.padStart(6)}  ${'saved'.padStart(6)}`)
  for (const [label, schema, gen] of shapes) {
    const codec = compilePayloadCodec(schema)!
    const validator = Compile(schema)
    const sample = gen()
    const n = Math.min(20_000, Math.floor(2 ** 26 / encodeCbor(sample).length))
    // Distinct objects (and strings) per op, as a server encoding distinct results would have.
    // Text as a flat string (not a rope), as one read from a socket or a file would be.
    const flat = (s: string): string => Buffer.from(s.slice(0, -1) + String.fromCharCode(97 + Math.floor(rand() * 26)), 'latin1').toString('latin1')
    const values = (): unknown[] => Array.from({ length: n }, () => (typeof sample.data === 'string' ? { data: flat(sample.data) } : gen()))
    row(`${label}  encode`, time(values, (v: unknown) => encodeCbor(v)), time(values, (v: unknown) => codec.encode(v)))
    const payload = encodeCbor(sample)
    row(
      `${label}  decode+validate`,
      time(
        () => copies(payload),
        (b: Buffer) => {
          const v = decodeCbor(b, DEFAULT_CBOR_LIMITS)
          return validator.Check(v) ? v : undefined
        },
      ),
      time(
        () => copies(payload),
        (b: Buffer) => {
          const r = codec.decode(b, DEFAULT_CBOR_LIMITS)
          return r.ok ? r.value : undefined
        },
      ),
    )
  }
}
