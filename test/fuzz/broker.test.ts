/**
 * Fuzz: a Broker with an honest worker (calc) and an honest client, fed generated and mutated
 * messages by raw DEALERs: one as a client, one as a worker of its own service (fuzzsvc).
 *
 * As a client (7/MDP client messages around zrpc frames, and messages of any shape), each run checks
 * what the broker does against the library's own parsers:
 * ```
 *   MDP frames wrong (either protocol)      dropped, counted by reason (dropped.bad-*, unexpected-command)
 *   frame unreadable, or envelope without id dropped.unreadable
 *   envelope with an id it cannot take      ERROR (id, INVALID_ARGUMENT) to the client   rejected.invalid
 *   CANCEL / CREDIT                         passed on, or taken out of the queue, or dropped.unknown-call
 *   REQUEST                                 an answer with its id: the worker's, or the broker's refusal
 *   afterwards                              every worker holds what it held before (its credit comes back)
 * ```
 * As a worker holding real calls of the fuzzing client, it answers with replies of any shape, for its
 * calls, others' ids and other clients; the client must receive only envelopes for calls it made,
 * each call ending once, and every drop counted.
 * Nothing may crash, RSS stays bounded, and the honest client is served after.
 */
import { expect } from 'chai'
import fc from 'fast-check'
import { Dealer } from 'zeromq'
import { Broker, RpcClient, RpcServer } from '../../lib/index.js'
import { encodeCbor } from '../../lib/codec/cbor.js'
import { Kind, encodeError, encodeItem, encodeReply, encodeRequest, parseFrame, readEnvelope, scanFrame, type Envelope, type Malformed } from '../../lib/codec/envelope.js'
import { brokerLimits, checkRequest, isZrpcBody } from '../../lib/broker/intake.js'
import { answerOf } from '../../lib/broker/intake.js'
import { MDPC01 as MDPC01_TEXT, isHeader, parseClientMessage, parseWorkerMessage } from '../../patterns/majordomo-protocol.js'
import { Calc, calcHandlers } from '../helpers/calc.js'
import { until } from '../helpers/endpoints.js'
import { EMPTY, MDPC01, MDPW01, frameArb, mdpClientMessageArb, mdpWorkerMessageArb, mutationArb, mutate, type Mutation } from './arbitraries.js'
import { CrashWatch, Inbox, RSS_BOUND_MB, RssWatch, bump, eventually, fuzzParameters, reportFuzz } from './harness.js'

const WAIT_MS = 5000
const SERVICES = ['calc', 'fuzzsvc']
const LIMITS = brokerLimits(4 * 1024 * 1024)
const CLIENT_ID = Buffer.from('fz-client')
const WORKER_ID = Buffer.from('fz-worker')
const WORKER_CREDIT = 4

/** One message the fuzzing client received: the service frame it came under, and its envelopes (or MMI code). */
interface Received {
  readonly service: string
  readonly envelopes: Array<Envelope | Malformed>
  /** Each envelope as the broker routes it, by its header: the call's id and whether it ends the call. */
  readonly answers: Array<{ readonly id: number; readonly ends: boolean } | undefined>
}

/** The headers of the envelopes in a frame the broker forwarded (it read them the same way). */
function answersIn(frame: Buffer): Received['answers'] {
  const scan = scanFrame(frame, LIMITS)
  if (scan.kind === 'malformed') return [undefined]
  return scan.ends.map((end, i) => answerOf(frame.subarray(i === 0 ? 0 : scan.ends[i - 1]!, end)))
}

/** What the broker must do with one batch of client messages. */
interface ClientExpected {
  dropped: Map<string, number>
  invalid: number
  followUps: number
  /** ERRORs owed, by `${id} INVALID_ARGUMENT`. */
  errors: Map<string, number>
  /** Ids of REQUESTs owed an answer. */
  answered: Set<number>
  mmi: number
  requests: number
}

function clientExpected(batch: readonly Buffer[][]): ClientExpected {
  const out: ClientExpected = { dropped: new Map(), invalid: 0, followUps: 0, errors: new Map(), answered: new Set(), mmi: 0, requests: 0 }
  const cancelled = new Set<number>()
  const requested: number[] = []
  for (const frames of batch) {
    // One empty frame reads as a ROUTER_NOTIFY notice (this peer leaving), not as a message.
    if (frames.length === 1 && frames[0]!.length === 0) continue
    if (!isHeader(frames[1], MDPC01_TEXT)) {
      // Read as the worker protocol, from a peer that is no worker.
      const msg = parseWorkerMessage(frames)
      if (msg.kind === 'invalid') bump(out.dropped, msg.reason)
      else if (msg.kind === 'request') bump(out.dropped, 'bad-command')
      else if (msg.kind === 'heartbeat' || msg.kind === 'reply') bump(out.dropped, 'unexpected-command')
      else if (msg.kind === 'ready') throw new Error('the generator made a READY from the client: not modelled')
      continue
    }
    const msg = parseClientMessage(frames)
    if ('invalid' in msg) {
      bump(out.dropped, msg.invalid)
      continue
    }
    const { service, body } = msg
    if (service.startsWith('mmi.')) {
      out.mmi++
      continue
    }
    if (!isZrpcBody(body)) {
      if (service === 'zrpc.broker' || service === 'zrpc.queue' || body.length === 0) bump(out.dropped, 'unreadable')
      continue
    }
    const frame = body[0]!
    const scan = scanFrame(frame, LIMITS)
    if (scan.kind === 'malformed') {
      bump(out.dropped, 'unreadable')
      continue
    }
    for (let i = 0; i < scan.ends.length; i++) {
      const intake = checkRequest(service, readEnvelope(frame, scan, i))
      if (intake.ok === false) {
        if (intake.id === undefined) bump(out.dropped, 'unreadable')
        else {
          out.invalid++
          bump(out.errors, `${intake.id} INVALID_ARGUMENT`)
        }
      } else if (intake.ok === 'follow-up') {
        out.followUps++
        if (intake.cancel) cancelled.add(intake.id)
      } else if (intake.ok === 'auth') {
        // A broker without CURVE checks no AUTH: dropped and counted (bad-auth).
      } else {
        out.requests++
        requested.push(intake.request.id)
      }
    }
  }
  for (const id of requested) if (!cancelled.has(id)) out.answered.add(id)
  return out
}

function clientSatisfied(exp: ClientExpected, received: readonly Received[]): boolean {
  const errors = new Map<string, number>()
  const answers = new Map<number, number>()
  let mmi = 0
  for (const r of received) {
    if (r.service.startsWith('mmi.')) mmi++
    for (const env of r.envelopes) {
      if (env.kind === Kind.Error) bump(errors, `${env.id} ${env.code}`)
      if (env.kind === Kind.Error || env.kind === Kind.Reply) answers.set(env.id, (answers.get(env.id) ?? 0) + 1)
    }
  }
  if (mmi < exp.mmi) return false
  for (const [key, n] of exp.errors) if ((errors.get(key) ?? 0) < n) return false
  for (const id of exp.answered) {
    let owed = 0
    for (const [k, n] of exp.errors) if (k.startsWith(`${id} `)) owed += n
    if ((answers.get(id) ?? 0) < owed + 1) return false
  }
  return true
}

const droppedDelta = (after: Record<string, number>, before: Record<string, number>): Map<string, number> => {
  const out = new Map<string, number>()
  for (const [k, v] of Object.entries(after)) if (v !== (before[k] ?? 0)) out.set(k, v - (before[k] ?? 0))
  return out
}

const holdingOf = (broker: Broker): Map<string, number> => new Map(broker.stats().workerList.map((w) => [w.identity, w.holding]))

describe('fuzz: a Broker fed generated and mutated client and worker messages', function () {
  this.timeout(300_000)
  let broker: Broker
  let endpoint: string
  let server: RpcServer
  let honest: RpcClient
  let client: Dealer
  let worker: Dealer
  let received: Inbox<Received>
  /** What the fuzzing worker got from the broker: requests (with their client) and commands. */
  let work: Inbox<{ client: Buffer; envelopes: Array<Envelope | Malformed> } | { command: number }>
  /** The fuzzing worker answers honestly (client property) or leaves answering to the test (worker property). */
  let honestWorker = true
  let loops: Promise<void>[]
  let watch: CrashWatch
  let rss: RssWatch

  beforeEach(async () => {
    broker = new Broker({ heartbeatMs: 1000, liveness: 5, requestExpiryMs: 0 })
    ;[endpoint] = (await broker.bind('tcp://127.0.0.1:*')) as [string]
    server = new RpcServer().implement(Calc, calcHandlers())
    await server.connectBroker(endpoint, { concurrency: 2, heartbeatMs: 1000 })
    honest = new RpcClient({ broker: endpoint, timeoutMs: 3000 })
    client = new Dealer({ linger: 0, routingId: CLIENT_ID.toString(), sendHighWaterMark: 100_000 })
    worker = new Dealer({ linger: 0, routingId: WORKER_ID.toString(), sendHighWaterMark: 100_000 })
    client.connect(endpoint)
    worker.connect(endpoint)
    received = new Inbox()
    work = new Inbox()
    honestWorker = true
    loops = [
      (async () => {
        try {
          for await (const frames of client) {
            const [, , service, ...rest] = frames
            const isMmi = service?.toString().startsWith('mmi.') === true
            received.push({ service: service?.toString() ?? '', envelopes: isMmi ? [] : rest.flatMap((f) => parseFrame(f)), answers: isMmi ? [] : rest.flatMap(answersIn) })
          }
        } catch {
          // closed
        }
      })(),
      (async () => {
        try {
          for await (const frames of worker) {
            const msg = parseWorkerMessage(frames)
            if (msg.kind === 'request') {
              const envelopes = msg.body.flatMap((f) => parseFrame(f))
              work.push({ client: msg.client, envelopes })
              if (honestWorker) {
                const answers = envelopes.filter((e): e is Envelope => e.kind === Kind.Request).map((e) => encodeReply(e.id, encodeCbor(1)))
                if (answers.length > 0) await worker.send([EMPTY, MDPW01, Buffer.of(0x03), msg.client, EMPTY, Buffer.concat(answers)])
              }
            } else if (msg.kind === 'heartbeat') await worker.send([EMPTY, MDPW01, Buffer.of(0x04)])
            else if (msg.kind === 'disconnect') work.push({ command: 0x05 })
          }
        } catch {
          // closed
        }
      })(),
    ]
    await register()
    await until(() => broker.stats().workerList.some((w) => w.service === 'calc' && w.credit === 2), WAIT_MS, 'the honest worker')
    expect(await honest.service(Calc).add({ a: 1, b: 2 })).to.equal(3)
    watch = new CrashWatch()
    rss = new RssWatch()
  })

  afterEach(async () => {
    rss.stop()
    watch.stop()
    client.close()
    worker.close()
    await Promise.all(loops)
    await honest.close()
    await server.close({ timeoutMs: 200 })
    await broker.close()
  })

  /** READY as a credit worker of fuzzsvc, unless it is registered already. */
  async function register(): Promise<void> {
    const me = (): { service: string } | undefined => broker.stats().workerList.find((w) => w.identity === WORKER_ID.toString('hex'))
    const registered = (): boolean => me()?.service === 'fuzzsvc'
    if (registered()) return
    if (me() !== undefined) {
      // A READY the fuzz sent made it a worker of another service: leave, then come back as fuzzsvc's.
      await worker.send([EMPTY, MDPW01, Buffer.of(0x05)])
      await until(() => me() === undefined, WAIT_MS, 'the fuzzing worker to leave')
    }
    await worker.send([EMPTY, MDPW01, Buffer.of(0x01), Buffer.from('fuzzsvc'), encodeCbor({ credit: WORKER_CREDIT })])
    await until(registered, WAIT_MS, 'the fuzzing worker to register')
  }

  let markers = 0
  /** An MMI request answered by the broker itself, after everything sent before it from this client. */
  async function sync(): Promise<void> {
    const name = `mmi.marker-${++markers}`
    await client.send([EMPTY, MDPC01, Buffer.from(name)])
    await received.until(() => received.items.some((r) => r.service === name), WAIT_MS, `the ${name} answer`)
  }

  async function honestAfter(): Promise<void> {
    for (let i = 0; i < 4; i++) expect(await honest.service(Calc).add({ a: i, b: 1 }, { timeoutMs: 3000 })).to.equal(i + 1)
  }

  it('as a client: every bad message is dropped and counted or answered, every request answered, worker credit comes back', async () => {
    const started = performance.now()
    const totals = { runs: 0, messages: 0, requests: 0, answers: 0 }
    const parameters = fuzzParameters(0xb40c3, 5000)
    const messages = mdpClientMessageArb(SERVICES, frameArb(SERVICES)).filter((frames) => isHeader(frames[1], MDPC01_TEXT) || parseWorkerMessage(frames).kind !== 'ready')
    await fc.assert(
      fc.asyncProperty(fc.array(messages, { minLength: 1, maxLength: 6 }), async (batch) => {
        totals.runs++
        const exp = clientExpected(batch)
        const before = broker.stats()
        const holding = holdingOf(broker)
        received.clear()
        for (const frames of batch) await client.send(frames)
        totals.messages += batch.length
        totals.requests += exp.requests
        await sync()
        await received.until(() => clientSatisfied(exp, received.items), WAIT_MS, 'every answer owed').catch((err: Error) => {
          const got = received.items.flatMap((r) => r.envelopes.map((e) => `${r.service}:${e.kind}:${e.id}${e.kind === Kind.Error ? `:${e.code}` : ''}`))
          throw new Error(`${err.message}: owed ${JSON.stringify([...exp.errors])} answers ${JSON.stringify([...exp.answered])} mmi ${exp.mmi}; got ${JSON.stringify(got.slice(0, 40))}`)
        })
        totals.answers += received.items.length
        const after = broker.stats()
        const dropped = droppedDelta(after.dropped, before.dropped)
        const unknownCall = dropped.get('unknown-call') ?? 0
        dropped.delete('unknown-call')
        // A REQUEST repeating the id of a call a worker holds is dropped: whether the first is still held depends on timing.
        dropped.delete('duplicate-id')
        expect([...dropped].sort(), 'dropped by reason').to.deep.equal([...exp.dropped].sort())
        expect(after.rejected['invalid']! - before.rejected['invalid']!, 'rejected.invalid').to.equal(exp.invalid)
        expect(after.followUps - before.followUps + (after.cancelledInQueue - before.cancelledInQueue) + unknownCall, 'CANCEL and CREDIT').to.equal(exp.followUps)
        // Every call a worker took was answered: each holds no more than before, so no credit is lost.
        await eventually(() => [...holdingOf(broker)].every(([id, n]) => n <= (holding.get(id) ?? 0)), WAIT_MS, 'the workers to hold no more than before').catch(() => {
          throw new Error(`workers hold ${JSON.stringify([...holdingOf(broker)])}, before this run ${JSON.stringify([...holding])}`)
        })
        watch.check()
        expect(rss.growth, 'RSS growth (MB)').to.be.below(RSS_BOUND_MB)
      }),
      parameters,
    )
    // Nothing waits for ever: queued plain requests expire too (requestExpiryMs 0 here: at the next sweep).
    await eventually(() => Object.values(broker.stats().services).every((svc) => svc.queued === 0), 3000, 'the queues to empty').catch(() => {
      throw new Error(`still queued: ${JSON.stringify(Object.entries(broker.stats().services).map(([name, svc]) => [name, svc.queued]))}`)
    })
    await honestAfter()
    watch.check()
    const s = broker.stats()
    reportFuzz('broker as client', {
      seed: parameters.seed!,
      runs: totals.runs,
      messages: totals.messages,
      requests: totals.requests,
      answers: totals.answers,
      dropped: Object.values(s.dropped).reduce((a, b) => a + b, 0),
      rejected: Object.values(s.rejected).reduce((a, b) => a + b, 0),
      followUps: s.followUps,
      duplicateIds: s.dropped['duplicate-id']!,
      rssGrowthMb: rss.growth,
      seconds: (performance.now() - started) / 1000,
    })
  })

  it('as a worker: only answers to calls it holds reach their client, each call ends once, and every drop is counted', async () => {
    honestWorker = false
    const started = performance.now()
    const totals = { runs: 0, messages: 0, calls: 0, delivered: 0 }
    const parameters = fuzzParameters(0x3e0c3, 3000)
    let nextId = 1
    // An answer for a call whose id is only known at run time: to a held call, a neighbour, or any id.
    const answer = fc
      .tuple(
        fc.oneof({ weight: 5, arbitrary: fc.constant<'held' | 'other'>('held') }, { weight: 1, arbitrary: fc.constant<'held' | 'other'>('other') }),
        fc.nat(3),
        fc.oneof(
          { weight: 4, arbitrary: fc.constant((id: number) => encodeReply(id, encodeCbor('ok'))) },
          { weight: 2, arbitrary: fc.constantFrom('INTERNAL', 'NOT_FOUND', 'CANCELLED').map((c) => (id: number) => encodeError(id, c, 'fuzz')) },
          { weight: 2, arbitrary: fc.constant((id: number) => encodeItem(id, encodeCbor(1))) },
          { weight: 1, arbitrary: fc.constantFrom<unknown>(0, 3, 7, 9, 'k').map((k) => (id: number) => encodeCbor([1, k, id, Buffer.alloc(1)])) },
          { weight: 1, arbitrary: fc.constant((id: number) => encodeRequest(id, 'fuzzsvc', 'x', 100, null, Buffer.alloc(1))) },
        ),
        fc.oneof({ weight: 4, arbitrary: fc.constant<Mutation[]>([]) }, { weight: 1, arbitrary: fc.array(mutationArb, { minLength: 1, maxLength: 2 }) }),
      )
      .map(([which, k, make, mutations]) => (held: readonly number[]) => mutations.reduce(mutate, make(which === 'held' && held.length > 0 ? held[k % held.length]! : 10_000_000 + k)))
    const toClient = fc.oneof({ weight: 6, arbitrary: fc.constant(CLIENT_ID) }, { weight: 1, arbitrary: fc.constantFrom(Buffer.from('someone-else'), Buffer.from([0x00, 0x7a, 0x71])) })
    const reply = fc
      .tuple(toClient, fc.oneof({ weight: 8, arbitrary: fc.array(answer, { minLength: 1, maxLength: 4 }).map((parts) => [parts]) }, { weight: 1, arbitrary: fc.array(fc.array(answer, { minLength: 1, maxLength: 2 }), { maxLength: 3 }) }))
      .map(([to, bodies]) => (held: readonly number[]) => [EMPTY, MDPW01, Buffer.of(0x03), to, EMPTY, ...bodies.map((parts) => Buffer.concat(parts.map((p) => p(held))))])
    const other = mdpWorkerMessageArb(['fuzzsvc'], toClient, fc.constant(Buffer.from([0x83, 1, 1, 0]))).map((frames) => () => frames)
    const script = fc.array(fc.oneof({ weight: 8, arbitrary: reply }, { weight: 1, arbitrary: other }), { minLength: 1, maxLength: 5 })
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: WORKER_CREDIT }), script, async (calls, steps) => {
        totals.runs++
        await register()
        const ids = Array.from({ length: calls }, () => nextId++)
        received.clear()
        work.clear()
        await client.send([EMPTY, MDPC01, Buffer.from('fuzzsvc'), Buffer.concat(ids.map((id) => encodeRequest(id, 'fuzzsvc', 'x', 60_000, null, encodeCbor(1))))])
        await work.until(() => work.items.flatMap((w) => ('envelopes' in w ? w.envelopes : [])).filter((e) => e.kind === Kind.Request).length >= calls, WAIT_MS, 'the calls at the worker')
        totals.calls += calls
        const before = broker.stats()
        const messages = steps.map((step) => step(ids))
        // The broker's reading of each reply, while the worker stays registered as it was.
        let plain = 0
        let reregistered = false
        const held = new Set(ids)
        const dropped = new Map<string, number>()
        for (const frames of messages) {
          const msg = parseWorkerMessage(frames)
          if (msg.kind === 'invalid') bump(dropped, msg.reason)
          else if (msg.kind === 'request') bump(dropped, 'bad-command')
          else if (msg.kind === 'ready' || msg.kind === 'disconnect') reregistered = true
          else if (msg.kind === 'reply' && !reregistered) {
            const [frame] = msg.body
            const scan = msg.body.length === 1 && frame !== undefined ? scanFrame(frame, LIMITS) : undefined
            if (scan === undefined || scan.kind === 'malformed') {
              bump(dropped, 'unreadable-reply')
              continue
            }
            for (let i = 0; i < scan.ends.length; i++) {
              const a = answerOf(frame!.subarray(i === 0 ? 0 : scan.ends[i - 1]!, scan.ends[i]!))
              const mine = msg.client.equals(CLIENT_ID) && a !== undefined && held.has(a.id)
              if (!mine) bump(dropped, 'unknown-call')
              else if (a.ends) held.delete(a.id)
            }
          } else if (msg.kind === 'heartbeat') plain++
        }
        for (const frames of messages) await worker.send(frames)
        totals.messages += messages.length
        // Then it answers what it still holds, honestly (after a READY or DISCONNECT the broker has already answered for it).
        await worker.send([EMPTY, MDPW01, Buffer.of(0x03), CLIENT_ID, EMPTY, Buffer.concat(ids.map((id) => encodeReply(id, encodeCbor('closer'))))])
        await sync()
        // Each call ends exactly once, and nothing reaches the client for ids it did not send.
        const ended = (): Map<number, number> => {
          const ends = new Map<number, number>()
          for (const r of received.items) for (const a of r.answers) if (a?.ends === true) ends.set(a.id, (ends.get(a.id) ?? 0) + 1)
          return ends
        }
        await received.until(() => ids.every((id) => ended().has(id)), WAIT_MS, 'an end for every call').catch((err: Error) => {
          throw new Error(`${err.message}: got ${JSON.stringify([...ended()])} for ${JSON.stringify(ids)}`)
        })
        for (const r of received.items) {
          if (r.service.startsWith('mmi.')) continue
          expect(r.service).to.equal('fuzzsvc')
          // The broker routes by header and never opens results: what it lets through is a REPLY, ERROR
          // or ITEM header for one of this client's calls (the client judges the rest, INTERNAL if bad).
          for (const a of r.answers) {
            expect(a, 'an envelope the broker let through').to.not.equal(undefined)
            expect(ids, `an answer for id ${String(a!.id)}`).to.include(a!.id)
          }
        }
        for (const [id, n] of ended()) expect(n, `ends of call ${id}`).to.equal(1)
        totals.delivered += received.items.length
        if (!reregistered) {
          const after = broker.stats()
          const delta = droppedDelta(after.dropped, before.dropped)
          // The honest closer is dropped as unknown-call for each call the fuzz already ended.
          bump(dropped, 'unknown-call', ids.filter((id) => !held.has(id)).length)
          for (const [k, v] of [...dropped]) if (v === 0) dropped.delete(k)
          expect([...delta].sort(), `dropped by reason (${plain} heartbeats)`).to.deep.equal([...dropped].sort())
        }
        watch.check()
        expect(rss.growth, 'RSS growth (MB)').to.be.below(RSS_BOUND_MB)
      }),
      parameters,
    )
    await honestAfter()
    watch.check()
    const s = broker.stats()
    reportFuzz('broker as worker', {
      seed: parameters.seed!,
      runs: totals.runs,
      messages: totals.messages,
      calls: totals.calls,
      delivered: totals.delivered,
      dropped: Object.values(s.dropped).reduce((a, b) => a + b, 0),
      unknownCall: s.dropped['unknown-call']!,
      unreadableReply: s.dropped['unreadable-reply']!,
      rssGrowthMb: rss.growth,
      seconds: (performance.now() - started) / 1000,
    })
  })
})
