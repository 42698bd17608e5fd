/**
 * fast-check arbitraries for the fuzz suites: zrpc/1 envelopes of every kind (valid, and with
 * mistyped, missing, extra or oversized items), byte-level mutations of them, joined frames, raw
 * CBOR that breaks the profile, 7/MDP client and worker messages around them, and topic messages.
 *
 * ```
 *   envelopeSpec ──encode──► bytes ──mutations──► bytes ──join──► frame ──(MDP / topic head)──► message
 * ```
 * Everything is built from values that fast-check generates and shrinks, so a failing case shrinks
 * to a small message and replays from the seed fast-check prints.
 */
import fc from 'fast-check'
import { encodeCbor } from '../../lib/codec/cbor.js'
import { MAX_ID, encodeCancel, encodeCredit, encodeError, encodeItem, encodePing, encodePong, encodeReply, encodeRequest, type Metadata } from '../../lib/codec/envelope.js'
import { STATUS_CODES, type StatusCode } from '../../lib/errors.js'
import { encodeTopicEnvelope } from '../../lib/pubsub/frame.js'

export const EMPTY = Buffer.alloc(0)
export const MDPC01 = Buffer.from('MDPC01')
export const MDPW01 = Buffer.from('MDPW01')

/** Ids at the edges of each CBOR head size, and past the largest exact one. */
const EDGE_IDS = [0, 1, 23, 24, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, MAX_ID]

/** A valid envelope id: small ones (which collide, as a hostile peer's would) and edge values. */
export const idArb: fc.Arbitrary<number> = fc.oneof({ weight: 6, arbitrary: fc.nat(64) }, { weight: 2, arbitrary: fc.constantFrom(...EDGE_IDS) }, { weight: 1, arbitrary: fc.nat({ max: MAX_ID }) })

/** What may stand where an id should: mostly valid ids, sometimes what is not one. */
const anyIdArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 9, arbitrary: idArb },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(-1, 2 ** 53, 1.5, 'id', null, true, Buffer.from([1]), [1], 2n ** 64n) },
)

const textArb = (max: number): fc.Arbitrary<string> => fc.string({ maxLength: max, unit: 'binary' })

/** Service names: the target's, the broker's own, MMI, and invented ones. */
export function serviceArb(known: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...known) }, { weight: 1, arbitrary: fc.constantFrom('zrpc.broker', 'nobody', 'mmi.service', '') }, { weight: 1, arbitrary: textArb(12) })
}

const methodArb = fc.oneof({ weight: 6, arbitrary: fc.constantFrom('add', 'echo', 'meta', 'fail', 'lie') }, { weight: 1, arbitrary: fc.constantFrom('nope', '', 'services', 'é✓') }, { weight: 1, arbitrary: textArb(12) })

/** Budgets: none left, short, long, and the largest a peer may send. */
export const timeoutArb: fc.Arbitrary<number> = fc.oneof(
  { weight: 1, arbitrary: fc.constant(0) },
  { weight: 6, arbitrary: fc.integer({ min: 1000, max: 3000 }) },
  { weight: 1, arbitrary: fc.constantFrom(1, 2 ** 31, MAX_ID) },
)

/** Any JSON-like value (the payloads a handler might be given), kept small. */
const valueArb: fc.Arbitrary<unknown> = fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<unknown>

/** Params or result bytes: CBOR of what the handlers take, of anything, or bytes that are not CBOR at all. */
export const payloadArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ a: fc.integer(), b: fc.integer() }).map((v) => encodeCbor(v)) },
  { weight: 3, arbitrary: textArb(40).map((data) => encodeCbor({ data })) },
  { weight: 2, arbitrary: valueArb.map((v) => encodeCbor(v)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 24 }) },
  { weight: 1, arbitrary: fc.constantFrom(Buffer.from([0x9f, 0x01, 0xff]), Buffer.from([0xd8, 0x1c, 0x80]), Buffer.from([0x81, 0x81, 0x81, 0x81]), encodeCbor([[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]])) },
)

const metadataArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: fc.constant(null) },
  { weight: 3, arbitrary: fc.dictionary(textArb(8), textArb(16), { maxKeys: 6 }) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>({ a: 1 }, ['a'], 'text', 7, Buffer.alloc(2), { ['__proto__']: 'x' }, Object.fromEntries(Array.from({ length: 70 }, (_, i) => [`k${i}`, 'v']))) },
)

const windowArb: fc.Arbitrary<unknown> = fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 2, arbitrary: fc.constantFrom(1, 4, 16, 65_536, 70_000) }, { weight: 1, arbitrary: fc.constantFrom<unknown>(0, -1, 'w', null, 2 ** 40) })

const keyArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.constant(undefined) },
  { weight: 2, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 64 }) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(null, Buffer.alloc(0), Buffer.alloc(65), 'k') },
)

const codeArb: fc.Arbitrary<unknown> = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...STATUS_CODES) }, { weight: 1, arbitrary: fc.constantFrom<unknown>('NOPE', '', 'cancelled', 42, null) })

const detailsArb: fc.Arbitrary<unknown> = fc.oneof({ weight: 4, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: valueArb })

/** Items a later minor version might append, or junk, after the ones a kind defines. */
const extraItemsArb = fc.oneof({ weight: 5, arbitrary: fc.constant<unknown[]>([]) }, { weight: 1, arbitrary: fc.array(valueArb, { maxLength: 3 }) })

/** A REQUEST whose every item is well typed (which the hand writer encodes), for targets that serve it. */
export interface RequestSpec {
  readonly id: number
  readonly service: string
  readonly method: string
  readonly timeoutMs: number
  readonly metadata: Metadata | null
  readonly params: Uint8Array
  readonly window: number | undefined
  readonly key: Uint8Array | undefined
}

/** A method and params that fit it (a call the handler runs), or any method with any params. */
const callArb: fc.Arbitrary<{ method: string; params: Uint8Array }> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ a: fc.integer(), b: fc.integer() }).map((p) => ({ method: 'add', params: encodeCbor(p) })) },
  { weight: 2, arbitrary: textArb(40).map((data) => ({ method: 'echo', params: encodeCbor({ data }) })) },
  { weight: 3, arbitrary: fc.record({ method: methodArb, params: payloadArb }) },
)

export function requestArb(services: readonly string[]): fc.Arbitrary<RequestSpec> {
  return fc.record({
    id: idArb,
    service: serviceArb(services),
    call: callArb,
    timeoutMs: timeoutArb,
    metadata: fc.option(fc.dictionary(textArb(8), textArb(16), { maxKeys: 4 }), { nil: null }),
    window: fc.option(fc.constantFrom(1, 4, 16, 65_536), { nil: undefined, freq: 3 }),
    key: fc.option(fc.uint8Array({ minLength: 1, maxLength: 64 }), { nil: undefined, freq: 3 }),
  }).map(({ call, ...rest }) => ({ ...rest, ...call }))
}

export const encodeRequestSpec = (r: RequestSpec): Buffer => encodeRequest(r.id, r.service, r.method, r.timeoutMs, r.metadata, r.params, r.window, r.key)

/**
 * One envelope's bytes, of any kind: valid ones through the library's encoders (hand-written
 * REQUEST and REPLY included), and shapes the encoders would never write through cbor-x.
 */
export function envelopeArb(services: readonly string[]): fc.Arbitrary<Buffer> {
  const id = anyIdArb
  return fc.oneof(
    { weight: 5, arbitrary: requestArb(services).map(encodeRequestSpec) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(id, serviceArb(services), methodArb, fc.oneof(timeoutArb, fc.constantFrom<unknown>(-5, 'soon', null)), metadataArb, fc.oneof(payloadArb, fc.constantFrom<unknown>('text', null, 7)), windowArb, keyArb, extraItemsArb)
        .map(([i, s, m, t, md, p, w, k, extra]) => {
          const items: unknown[] = [1, 0, i, s, m, t, md, p]
          if (w !== undefined || k !== undefined || extra.length > 0) items.push(w ?? null)
          if (k !== undefined || extra.length > 0) items.push(k ?? null)
          return encodeCbor([...items, ...extra])
        }),
    },
    { weight: 3, arbitrary: fc.tuple(idArb, payloadArb).map(([i, p]) => encodeReply(i, p)) },
    { weight: 2, arbitrary: fc.tuple(idArb, fc.constantFrom(...STATUS_CODES), textArb(30), detailsArb).map(([i, c, m, d]) => encodeError(i, c, m, d)) },
    { weight: 1, arbitrary: fc.tuple(id, codeArb, fc.oneof(textArb(30), fc.constantFrom<unknown>(7, null)), extraItemsArb).map(([i, c, m, extra]) => encodeCbor([1, 2, i, c, m, ...extra])) },
    { weight: 2, arbitrary: idArb.map(encodeCancel) },
    { weight: 1, arbitrary: idArb.map(encodePing) },
    { weight: 1, arbitrary: idArb.map(encodePong) },
    { weight: 2, arbitrary: fc.tuple(idArb, payloadArb).map(([i, p]) => encodeItem(i, p)) },
    { weight: 2, arbitrary: fc.tuple(idArb, fc.oneof(fc.nat(100), fc.constantFrom(65_536, 70_000, MAX_ID))).map(([i, n]) => encodeCredit(i, n)) },
    { weight: 1, arbitrary: fc.tuple(id, extraItemsArb).map(([i, extra]) => encodeCbor([1, 8, i, ...extra])) },
    // Other kinds, versions and shapes: reserved kinds, a newer version, not an array, too short.
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom<unknown>(1, 1, 1, 0, 2, -1, 'one', 2 ** 40), fc.constantFrom<unknown>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, -1, 'k', 2 ** 40, null), id, fc.array(valueArb, { maxLength: 6 }))
        .map(([v, k, i, rest]) => encodeCbor([v, k, i, ...rest])),
    },
    { weight: 1, arbitrary: fc.constantFrom<unknown>([], [1], [1, 0], { a: 1 }, 'text', 7, null, [1, 3, 1, [[[1]]]]).map((v) => encodeCbor(v)) },
    // Over the envelope limits (4096 items): judged by the header alone.
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom(0, 1, 2, 3, 6, 7, 8, 11), idArb).map(([k, i]) => encodeCbor([1, k, i, ...new Array<number>(4100).fill(0)])) },
  )
}

/** A byte-level change to an encoded message. */
export type Mutation =
  | { readonly op: 'flip'; readonly at: number; readonly bit: number }
  | { readonly op: 'set'; readonly at: number; readonly byte: number }
  | { readonly op: 'cut'; readonly at: number }
  | { readonly op: 'insert'; readonly at: number; readonly byte: number }
  | { readonly op: 'delete'; readonly at: number }
  | { readonly op: 'lie'; readonly at: number; readonly head: number }
  | { readonly op: 'repeat'; readonly at: number; readonly length: number }

/** Bytes that mean the most to a CBOR reader: heads of each size and major type, break, simple values. */
const INTERESTING_BYTES = [0x00, 0x01, 0x03, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1f, 0x40, 0x5f, 0x60, 0x7f, 0x80, 0x9f, 0xa0, 0xbf, 0xc0, 0xd8, 0xf4, 0xf6, 0xf7, 0xf8, 0xf9, 0xfb, 0xff]
/** Heads that declare far more than follows (length lies). */
const LYING_HEADS = [
  [0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
  [0x7a, 0x7f, 0xff, 0xff, 0xff],
  [0x9b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00],
  [0xba, 0x00, 0x10, 0x00, 0x00],
  [0x99, 0xff, 0xff],
  [0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
  [0x3b, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
].map((b) => Buffer.from(b))

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), byte: fc.oneof(fc.constantFrom(...INTERESTING_BYTES), fc.nat(255)) }),
  fc.record({ op: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), byte: fc.oneof(fc.constantFrom(...INTERESTING_BYTES), fc.nat(255)) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('lie' as const), at: fc.nat(), head: fc.nat(LYING_HEADS.length - 1) }),
  fc.record({ op: fc.constant('repeat' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 16 }) }),
)

/** Applies one mutation; positions wrap around the input. */
export function mutate(bytes: Buffer, m: Mutation): Buffer {
  if (bytes.length === 0) return m.op === 'insert' ? Buffer.from([m.byte]) : bytes
  const at = m.at % bytes.length
  switch (m.op) {
    case 'flip': {
      const out = Buffer.from(bytes)
      out[at] = out[at]! ^ (1 << m.bit)
      return out
    }
    case 'set': {
      const out = Buffer.from(bytes)
      out[at] = m.byte
      return out
    }
    case 'cut':
      return bytes.subarray(0, at)
    case 'insert':
      return Buffer.concat([bytes.subarray(0, at), Buffer.from([m.byte]), bytes.subarray(at)])
    case 'delete':
      return Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)])
    case 'lie':
      return Buffer.concat([bytes.subarray(0, at), LYING_HEADS[m.head]!, bytes.subarray(at)])
    case 'repeat':
      return Buffer.concat([bytes.subarray(0, at + m.length), bytes.subarray(at)])
  }
}

/** Bytes, mostly left alone, sometimes mutated once or a few times. */
export function mutated(bytes: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> {
  return fc.tuple(bytes, fc.oneof({ weight: 3, arbitrary: fc.constant<Mutation[]>([]) }, { weight: 2, arbitrary: fc.array(mutationArb, { minLength: 1, maxLength: 3 }) })).map(([b, ms]) => ms.reduce(mutate, b))
}

/**
 * A frame: one or more envelopes back to back (a CBOR sequence), each maybe mutated, the whole maybe
 * mutated too; sometimes many copies of one (a frame read over several turns), sometimes raw bytes.
 */
export function frameArb(services: readonly string[]): fc.Arbitrary<Buffer> {
  const one = mutated(envelopeArb(services))
  return fc.oneof(
    { weight: 12, arbitrary: mutated(fc.array(one, { minLength: 1, maxLength: 6 }).map((parts) => Buffer.concat(parts))) },
    // The same envelope twice (a REQUEST sent again with the id of a call in flight, say), with others around it.
    { weight: 2, arbitrary: fc.tuple(one, fc.array(one, { maxLength: 2 })).map(([e, others]) => Buffer.concat([e, ...others, e])) },
    { weight: 1, arbitrary: fc.tuple(one, fc.integer({ min: 257, max: 700 })).map(([e, n]) => Buffer.concat(new Array<Buffer>(n).fill(e))) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)) },
    { weight: 1, arbitrary: fc.constantFrom(Buffer.alloc(0), Buffer.from([0xff]), Buffer.from([0x9f, 0xff]), Buffer.from([0xc6, 0x01])) },
  )
}

/**
 * A message as a DEALER sends it: usually one frame, sometimes several (the peer's framing wrong),
 * as zeromq carries them.
 */
export function messageArb(frame: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer[]> {
  return fc.oneof({ weight: 12, arbitrary: frame.map((f) => [f]) }, { weight: 1, arbitrary: fc.array(frame, { minLength: 2, maxLength: 3 }) })
}

/** A 7/MDP client message (DEALER form, leading empty frame), right or wrong in each frame. */
export function mdpClientMessageArb(services: readonly string[], body: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer[]> {
  const service = fc.oneof({ weight: 8, arbitrary: serviceArb(services).filter((s) => s !== '') }, { weight: 1, arbitrary: fc.constantFrom('mmi.service', 'mmi.zrpc', 'mmi.other', 'zrpc.queue', '') })
  const bodies = fc.oneof({ weight: 8, arbitrary: body.map((b) => [b]) }, { weight: 1, arbitrary: fc.array(body, { maxLength: 3 }) })
  return fc.oneof(
    { weight: 10, arbitrary: fc.tuple(service, bodies).map(([s, b]) => [EMPTY, MDPC01, Buffer.from(s), ...b]) },
    // Wrong in the frames MDP itself reads: a non-empty first frame, another header, no service.
    { weight: 1, arbitrary: fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 4 }), service, body).map(([e, s, b]) => [Buffer.from(e), MDPC01, Buffer.from(s), b]) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom('MDPC02', 'MDPC0', 'mdpc01', ''), service, body).map(([h, s, b]) => [EMPTY, Buffer.from(h), Buffer.from(s), b]) },
    { weight: 1, arbitrary: fc.constantFrom<Buffer[]>([EMPTY, MDPC01], [EMPTY], [EMPTY, MDPC01, EMPTY]) },
    { weight: 1, arbitrary: fc.array(fc.uint8Array({ maxLength: 12 }).map((b) => Buffer.from(b)), { minLength: 1, maxLength: 5 }) },
  )
}

/** The credit frame of a READY: right, out of range, or not CBOR. */
export const readyCreditArb: fc.Arbitrary<Buffer[]> = fc.oneof(
  { weight: 3, arbitrary: fc.constant<Buffer[]>([]) },
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 8 }).map((credit) => [encodeCbor({ credit })]) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(0, 4097, -1, 1.5, 'x', null).map((credit) => [encodeCbor({ credit })]) },
  { weight: 1, arbitrary: fc.array(fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)), { minLength: 1, maxLength: 2 }) },
)

/** A 7/MDP worker-protocol message (DEALER form) with any command, well formed or not. */
export function mdpWorkerMessageArb(services: readonly string[], client: fc.Arbitrary<Buffer>, body: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer[]> {
  const command = (c: number): Buffer => Buffer.of(c)
  return fc.oneof(
    { weight: 2, arbitrary: fc.tuple(serviceArb(services), readyCreditArb).map(([s, extra]) => [EMPTY, MDPW01, command(0x01), Buffer.from(s), ...extra]) },
    { weight: 6, arbitrary: fc.tuple(client, fc.array(body, { minLength: 0, maxLength: 2 })).map(([c, b]) => [EMPTY, MDPW01, command(0x03), c, EMPTY, ...b]) },
    { weight: 1, arbitrary: fc.tuple(client, body).map(([c, b]) => [EMPTY, MDPW01, command(0x02), c, EMPTY, b]) },
    { weight: 2, arbitrary: fc.constantFrom<Buffer[]>([EMPTY, MDPW01, command(0x04)], [EMPTY, MDPW01, command(0x04), EMPTY], [EMPTY, MDPW01, command(0x05), Buffer.from('x')]) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.uint8Array({ maxLength: 3 }), fc.constantFrom(MDPW01, Buffer.from('MDPW02'), EMPTY), fc.uint8Array({ maxLength: 2 }), fc.array(fc.uint8Array({ maxLength: 8 }), { maxLength: 3 }))
        .map(([e, h, c, rest]) => [Buffer.from(e), h, Buffer.from(c), ...rest.map((r) => Buffer.from(r))]),
    },
  )
}

/** The frames after `[] MDPW01 0x02 <client> []` that a broker sends a worker: a zrpc frame, or what a broker should never send. */
export function workerBodyArb(services: readonly string[]): fc.Arbitrary<Buffer[]> {
  return fc.oneof({ weight: 10, arbitrary: frameArb(services).map((f) => [f]) }, { weight: 1, arbitrary: fc.array(frameArb(services), { minLength: 0, maxLength: 3 }) })
}

/** A topic message's first frame: a subscribed prefix with a key (or junk after it), or junk. */
export function topicHeadArb(prefixes: readonly string[]): fc.Arbitrary<Buffer> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.tuple(fc.constantFrom(...prefixes), fc.string({ maxLength: 6, unit: 'grapheme-ascii' }).filter((k) => !k.includes('\0'))).map(([p, k]) => Buffer.from(`${p}${k}\0`)) },
    { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...prefixes), fc.uint8Array({ maxLength: 8 })).map(([p, b]) => Buffer.concat([Buffer.from(p), b])) },
    { weight: 1, arbitrary: fc.constantFrom(...prefixes).map((p) => Buffer.from(p)) },
  )
}

/** A topic envelope `[1, publisher(8), seq, data]`: valid with any data, or with bad items; maybe mutated. */
export function topicBodyArb(publishers: readonly Buffer[]): fc.Arbitrary<Buffer> {
  const seq = fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 1, max: 50 }) }, { weight: 1, arbitrary: fc.constantFrom(1, 2 ** 20, 2 ** 21, 2 ** 52, MAX_ID) })
  const data = fc.oneof(
    { weight: 4, arbitrary: fc.integer().map((n) => encodeCbor(n)) },
    { weight: 2, arbitrary: fc.record({ sym: fc.string({ maxLength: 6 }), px: fc.double({ noNaN: true }) }).map((v) => encodeCbor(v)) },
    { weight: 2, arbitrary: payloadArb.map((p) => Buffer.from(p)) },
  )
  const publisher = fc.oneof(fc.constantFrom(...publishers), fc.uint8Array({ minLength: 8, maxLength: 8 }).map((b) => Buffer.from(b)))
  return mutated(
    fc.oneof(
      { weight: 8, arbitrary: fc.tuple(publisher, seq, data).map(([p, s, d]) => encodeTopicEnvelope(p, s, d)) },
      {
        weight: 2,
        arbitrary: fc
          .tuple(fc.constantFrom<unknown>(1, 2, 0, 'v'), fc.oneof(publisher, fc.constantFrom<unknown>(Buffer.alloc(7), Buffer.alloc(9), 'id', null)), fc.constantFrom<unknown>(0, -1, 1.5, MAX_ID + 1, 'n', 3), fc.oneof(data, fc.constantFrom<unknown>('text', null)), extraItemsArb)
          .map(([v, p, s, d, extra]) => encodeCbor([v, p, s, d, ...extra])),
      },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)) },
    ),
  )
}

/** Status codes, for reading answers. */
export const isCode = (c: unknown): c is StatusCode => typeof c === 'string' && (STATUS_CODES as readonly string[]).includes(c)
