/**
 * Fuzz: an RpcClient whose server is a raw ROUTER answering each call with generated and mutated
 * messages: envelopes of every kind for the call's id, a neighbour's, or any id, joined, mutated,
 * cut, several frames to a message, then one honest REPLY (the closer).
 *
 * A unary call is checked against a model of the client's receive side (channel-replies.ts):
 * ```
 *   not one frame, unreadable, REQUEST/CANCEL/PING/CREDIT/END    malformed
 *   unknown kind                                                  unknownKinds
 *   for an id not in flight                                       lateReplies
 *   the first REPLY / ERROR / ITEM / unreadable-with-id for it    ends the call: its value, its code, INTERNAL
 * ```
 * the call ends with exactly the outcome that model predicts and the counters move by exactly what
 * it says. A stream is fed the same way and must end (its items checked against its schema) with
 * the counters that do not depend on timing exact. Nothing may crash, RSS stays bounded, and an
 * honest reply is taken after.
 */
import { expect } from 'chai'
import fc from 'fast-check'
import { Type } from 'typebox'
import { RpcClient, RpcError, defineService } from '../../lib/index.js'
import { decodeCbor, encodeCbor } from '../../lib/codec/cbor.js'
import { Kind, encodeCancel, encodeCredit, encodeError, encodeItem, encodePing, encodePong, encodeReply, encodeRequest, parseFrame, type Envelope, type Malformed } from '../../lib/codec/envelope.js'
import { STATUS_CODES } from '../../lib/errors.js'
import { Calc } from '../helpers/calc.js'
import { RawServer } from '../integration/client-raw-server.js'
import { EMPTY, envelopeArb, mutated, mutationArb, mutate, payloadArb, type Mutation } from './arbitraries.js'
import { CrashWatch, Inbox, RSS_BOUND_MB, RssWatch, eventually, fuzzParameters, reportFuzz } from './harness.js'

const Ticks = defineService('calc', { ticks: { params: Type.Object({}), stream: Type.Integer() } })
const CALL_TIMEOUT_MS = 4000

/** Which id an answer carries: the call's, its neighbour's (never in flight), or a random one. */
type IdPick = 'call' | 'next' | number
const idPickArb: fc.Arbitrary<IdPick> = fc.oneof({ weight: 6, arbitrary: fc.constant<IdPick>('call') }, { weight: 1, arbitrary: fc.constant<IdPick>('next') }, { weight: 1, arbitrary: fc.integer({ min: 1_000_000, max: 2 ** 40 }) })

/** An answer envelope for a call whose id is only known at run time, mutated after the id is in. */
type AnswerTemplate = (id: number) => Buffer

const resultArb: fc.Arbitrary<Uint8Array> = fc.oneof({ weight: 3, arbitrary: fc.string({ maxLength: 20 }).map((s) => encodeCbor(s)) }, { weight: 2, arbitrary: payloadArb }, { weight: 1, arbitrary: fc.integer().map((n) => encodeCbor(n)) })
const detailsArb: fc.Arbitrary<unknown> = fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) })

const templateArb: fc.Arbitrary<AnswerTemplate> = fc
  .tuple(
    idPickArb,
    fc.oneof(
      { weight: 5, arbitrary: resultArb.map((r) => (id: number) => encodeReply(id, r)) },
      { weight: 3, arbitrary: fc.tuple(fc.constantFrom(...STATUS_CODES), fc.string({ maxLength: 20 }), detailsArb).map(([c, m, d]) => (id: number) => encodeError(id, c, m, d)) },
      { weight: 1, arbitrary: fc.tuple(fc.constantFrom<unknown>('NOPE', 42, null, ''), fc.constantFrom<unknown>('m', 7, null)).map(([c, m]) => (id: number) => encodeCbor([1, 2, id, c, m])) },
      { weight: 3, arbitrary: resultArb.map((r) => (id: number) => encodeItem(id, r)) },
      { weight: 1, arbitrary: fc.nat(100).map((n) => (id: number) => encodeCredit(id, n)) },
      { weight: 1, arbitrary: fc.constantFrom(encodePing, encodePong, encodeCancel) },
      { weight: 1, arbitrary: fc.constant((id: number) => encodeRequest(id, 'calc', 'echo', 100, null, encodeCbor({ data: 'x' }))) },
      { weight: 1, arbitrary: fc.tuple(fc.constantFrom<unknown>(0, 1, 2, 'v'), fc.constantFrom<unknown>(1, 2, 6, 9, 15, 200, 'k', -1), fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 3 })).map(([v, k, rest]) => (id: number) => encodeCbor([v, k, id, ...rest])) },
      { weight: 1, arbitrary: fc.constantFrom<unknown>([1, 1, 'id', Buffer.alloc(1)], [1, 1], 'text', [1, 1, -1, Buffer.alloc(1)]).map((v) => () => encodeCbor(v)) },
    ),
    fc.oneof({ weight: 4, arbitrary: fc.constant<Mutation[]>([]) }, { weight: 1, arbitrary: fc.array(mutationArb, { minLength: 1, maxLength: 2 }) }),
  )
  .map(([pick, make, mutations]) => (callId: number) => mutations.reduce(mutate, make(pick === 'call' ? callId : pick === 'next' ? callId + 1 : pick)))

/** One message of the script: one frame of joined answers (maybe mutated whole), or the wrong number of frames. */
const scriptMessageArb: fc.Arbitrary<(id: number) => Buffer[]> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc
      .tuple(fc.array(templateArb, { minLength: 1, maxLength: 4 }), fc.oneof({ weight: 5, arbitrary: fc.constant<Mutation[]>([]) }, { weight: 1, arbitrary: fc.array(mutationArb, { minLength: 1, maxLength: 2 }) }))
      .map(([parts, mutations]) => (id: number) => [mutations.reduce(mutate, Buffer.concat(parts.map((p) => p(id))))]),
  },
  // Answers for other ids from the general generator, with many copies sometimes.
  { weight: 1, arbitrary: mutated(envelopeArb(['calc'])).map((b) => () => [b]) },
  { weight: 1, arbitrary: fc.tuple(templateArb, templateArb).map(([a, b]) => (id: number) => [a(id), b(id)]) },
  { weight: 1, arbitrary: fc.constant(() => [EMPTY]) },
)

const scriptArb = fc.array(scriptMessageArb, { minLength: 1, maxLength: 4 })

interface Model {
  malformed: number
  unknownKinds: number
  lateReplies: number
  /** 'ok:<value>' or the code the call ends with. */
  outcome: string | undefined
}

/** What the client's receive side does with these messages, with one unary echo call `id` in flight. */
function model(messages: readonly Buffer[][], id: number): Model {
  const m: Model = { malformed: 0, unknownKinds: 0, lateReplies: 0, outcome: undefined }
  const ends = (outcome: string): void => {
    m.outcome = outcome
  }
  const forCall = (envId: number): boolean => {
    if (m.outcome === undefined && envId === id) return true
    m.lateReplies++
    return false
  }
  for (const message of messages) {
    if (message.length !== 1) {
      m.malformed++
      continue
    }
    for (const env of parseFrame(message[0]!) as Array<Envelope | Malformed>) {
      switch (env.kind) {
        case 'malformed':
          if ('unknownKind' in env || env.code === 'UNIMPLEMENTED') {
            m.unknownKinds++
            break
          }
          m.malformed++
          if (env.id !== undefined && forCall(env.id)) ends('INTERNAL')
          break
        case Kind.Pong:
          break
        case Kind.Request:
        case Kind.Cancel:
        case Kind.Ping:
        case Kind.Credit:
        case Kind.End:
        case Kind.Auth:
          m.malformed++
          break
        case Kind.Item:
          if (forCall(env.id)) ends('INTERNAL')
          break
        case Kind.Error:
          if (forCall(env.id)) ends(env.code)
          break
        case Kind.Reply:
          if (forCall(env.id)) {
            let value: unknown
            try {
              value = decodeCbor(env.result)
            } catch {
              ends('INTERNAL')
              break
            }
            ends(typeof value === 'string' ? `ok:${value}` : 'INTERNAL')
          }
          break
      }
    }
  }
  return m
}

const outcomeOf = (err: unknown): string => (err instanceof RpcError ? err.code : `not an RpcError: ${String(err)}`)

describe('fuzz: RpcClient answered by a server that sends generated and mutated replies', function () {
  this.timeout(180_000)
  let peer: RawServer
  let client: RpcClient
  /** REQUESTs (and everything else) the client sent, with the routing id to answer. */
  let requests: Inbox<{ from: Buffer; env: Envelope | Malformed }>
  let watch: CrashWatch
  let rss: RssWatch

  beforeEach(async () => {
    requests = new Inbox()
    peer = await RawServer.start('tcp://127.0.0.1:*', (from, [frame]) => {
      if (frame !== undefined) requests.push(...parseFrame(frame).map((env) => ({ from, env })))
    })
    client = new RpcClient({ connect: peer.endpoint, timeoutMs: CALL_TIMEOUT_MS })
    watch = new CrashWatch()
    rss = new RssWatch()
  })
  afterEach(async () => {
    rss.stop()
    watch.stop()
    await client.close()
    await peer.close()
  })

  /** Waits for the REQUEST the client sends next and returns its id and sender. */
  async function nextRequest(): Promise<{ from: Buffer; id: number }> {
    let found: { from: Buffer; env: Envelope | Malformed } | undefined
    await requests.until(() => (found = requests.items.find((r) => r.env.kind === Kind.Request)) !== undefined, 3000, 'the REQUEST')
    requests.clear()
    return { from: found!.from, id: found!.env.id! }
  }

  async function honestAfter(): Promise<void> {
    const call = client.service(Calc).echo({ data: 'x' }, { timeoutMs: 3000 })
    const { from, id } = await nextRequest()
    await peer.send(from, encodeReply(id, encodeCbor('good')))
    expect(await call).to.equal('good')
  }

  it('unary calls: each ends with the outcome the first answer for it gives, and every other envelope is counted', async () => {
    const started = performance.now()
    const totals = { runs: 0, messages: 0, envelopes: 0, ok: 0, errors: 0 }
    const parameters = fuzzParameters(0xc11e47, 5000)
    await fc.assert(
      fc.asyncProperty(scriptArb, async (script) => {
        totals.runs++
        const before = { ...client.stats[0]! }
        const call = client.service(Calc).echo({ data: 'x' }, { timeoutMs: CALL_TIMEOUT_MS }).then((v) => `ok:${v}`, outcomeOf)
        const { from, id } = await nextRequest()
        const messages = [...script.map((make) => make(id)), [encodeReply(id, encodeCbor('closer'))]]
        const m = model(messages, id)
        for (const message of messages) await peer.send(from, ...message)
        totals.messages += messages.length
        for (const message of messages) if (message.length === 1) totals.envelopes += parseFrame(message[0]!).length
        const outcome = await call
        if (outcome.startsWith('ok:')) totals.ok++
        else totals.errors++
        expect(outcome, 'outcome').to.equal(m.outcome)
        const settled = (): boolean => {
          const s = client.stats[0]!
          return s.malformed - before.malformed === m.malformed && s.unknownKinds - before.unknownKinds === m.unknownKinds && s.lateReplies - before.lateReplies === m.lateReplies
        }
        await eventually(settled, 3000, 'the counters the model predicts').catch(() => {
          const s = client.stats[0]!
          throw new Error(
            `counters moved by malformed ${s.malformed - before.malformed}, unknownKinds ${s.unknownKinds - before.unknownKinds}, lateReplies ${s.lateReplies - before.lateReplies}; model: ${JSON.stringify(m)}`,
          )
        })
        expect(client.stats[0]!.misrouted).to.equal(before.misrouted)
        expect(client.inFlight).to.equal(0)
        watch.check()
        expect(rss.growth, 'RSS growth (MB)').to.be.below(RSS_BOUND_MB)
      }),
      parameters,
    )
    await honestAfter()
    watch.check()
    const s = client.stats[0]!
    reportFuzz('client unary', {
      seed: parameters.seed!,
      runs: totals.runs,
      messages: totals.messages,
      envelopes: totals.envelopes,
      callsOk: totals.ok,
      callsFailed: totals.errors,
      malformed: s.malformed,
      unknownKinds: s.unknownKinds,
      lateReplies: s.lateReplies,
      recoveries: s.recoveries,
      rssGrowthMb: rss.growth,
      seconds: (performance.now() - started) / 1000,
    })
  })

  it('streams: each ends (its items checked), unreadable and unknown envelopes are counted', async () => {
    const started = performance.now()
    const totals = { runs: 0, messages: 0, items: 0, completed: 0, failed: 0 }
    const parameters = fuzzParameters(0x57ea3, 2000)
    await fc.assert(
      fc.asyncProperty(scriptArb, fc.constantFrom(1, 2, 4, 16), async (script, window) => {
        totals.runs++
        const before = { ...client.stats[0]! }
        const stream = client.service(Ticks).ticks({}, { timeoutMs: CALL_TIMEOUT_MS, window })
        const items: unknown[] = []
        const reading = (async () => {
          for await (const item of stream) items.push(item)
          return 'completed'
        })().catch(outcomeOf)
        const { from, id } = await nextRequest()
        const messages = [...script.map((make) => make(id)), [encodeReply(id, encodeCbor(null))]]
        const m = model(messages, id)
        for (const message of messages) await peer.send(from, ...message)
        totals.messages += messages.length
        const ending = await reading
        if (ending === 'completed') totals.completed++
        else totals.failed++
        totals.items += items.length
        expect(ending).to.not.match(/^not an RpcError/)
        for (const item of items) expect(Number.isInteger(item), `item ${String(item)}`).to.equal(true)
        const itemsSent = messages.flatMap((msg) => (msg.length === 1 ? parseFrame(msg[0]!) : [])).filter((e) => e.kind === Kind.Item && e.id === id).length
        expect(items.length).to.be.at.most(itemsSent)
        // Which envelopes find the stream still open depends on how fast it reads; these two do not.
        await eventually(() => client.stats[0]!.malformed - before.malformed >= m.malformed && client.stats[0]!.unknownKinds - before.unknownKinds === m.unknownKinds, 3000, 'the counters').catch(() => {
          const s = client.stats[0]!
          throw new Error(`counters moved by malformed ${s.malformed - before.malformed}, unknownKinds ${s.unknownKinds - before.unknownKinds}; model: ${JSON.stringify(m)}`)
        })
        await eventually(() => client.inFlight === 0, 3000, 'the stream to leave the table')
        watch.check()
        expect(rss.growth, 'RSS growth (MB)').to.be.below(RSS_BOUND_MB)
      }),
      parameters,
    )
    await honestAfter()
    watch.check()
    const s = client.stats[0]!
    reportFuzz('client streams', {
      seed: parameters.seed!,
      runs: totals.runs,
      messages: totals.messages,
      items: totals.items,
      completed: totals.completed,
      failed: totals.failed,
      malformed: s.malformed,
      unknownKinds: s.unknownKinds,
      lateReplies: s.lateReplies,
      rssGrowthMb: rss.growth,
      seconds: (performance.now() - started) / 1000,
    })
  })
})
