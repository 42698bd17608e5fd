/**
 * Fuzz: an RpcServer fed generated and mutated frames by a raw DEALER over TCP.
 *
 * Each run sends a batch of messages (joined envelopes of every kind, mutated bytes, raw bytes,
 * multi-frame messages), then a PING as a marker, and checks against what the codec says each
 * envelope is:
 * ```
 *   unreadable envelope with an id   answered ERROR (id, its code)        listener.malformed
 *   unreadable, no id                dropped                               listener.malformed
 *   PING / ITEM, END                 PONG / ERROR UNIMPLEMENTED
 *   REPLY, ERROR, PONG               dropped                               listener.unexpectedKind
 *   not [routing id, frame]          dropped                               listener.badFrameCount
 *   REQUEST                          answered (REPLY or ERROR), unless cancelled or short-lived
 * ```
 * and that nothing crashed and RSS stayed bounded; afterwards an honest client is served.
 */
import { expect } from 'chai'
import fc from 'fast-check'
import { Dealer } from 'zeromq'
import { RpcClient, RpcServer } from '../../lib/index.js'
import { Kind, encodePing, encodeRequest, parseFrame, type Envelope, type Malformed } from '../../lib/codec/envelope.js'
import { encodeCbor } from '../../lib/codec/cbor.js'
import { Calc, calcHandlers } from '../helpers/calc.js'
import { frameArb, messageArb } from './arbitraries.js'
import { CrashWatch, Inbox, RSS_BOUND_MB, RssWatch, bump, fuzzParameters, reportFuzz } from './harness.js'

const MARKER_BASE = 2 ** 52
const WAIT_MS = 5000

/** What the server must do with one batch, from the codec's reading of each frame. */
interface Expected {
  malformed: number
  badFrames: number
  unexpectedKind: number
  envelopes: number
  /** ERRORs owed, by `${id} ${code}`. */
  errors: Map<string, number>
  /** PONGs owed, by id. */
  pongs: Map<string, number>
  /** Ids of REQUESTs that must get some answer. */
  answered: Set<number>
}

function expected(batch: readonly Buffer[][]): Expected {
  const out: Expected = { malformed: 0, badFrames: 0, unexpectedKind: 0, envelopes: 0, errors: new Map(), pongs: new Map(), answered: new Set() }
  const requests: Array<{ id: number; answerable: boolean; afterNotice: boolean }> = []
  const cancelled = new Set<number>()
  let noticeAt = -1
  batch.forEach((message, index) => {
    const [frame] = message
    if (message.length !== 1) return void out.badFrames++
    // An empty message is a ROUTER_NOTIFY notice: the server takes it as this peer leaving.
    if (frame!.length === 0) return void (noticeAt = index)
    for (const env of parseFrame(frame!)) {
      out.envelopes++
      const e = env as Envelope | Malformed
      switch (e.kind) {
        case 'malformed':
          out.malformed++
          if (e.id !== undefined) bump(out.errors, `${e.id} ${e.code}`)
          break
        case Kind.Request:
          // A call whose budget is under a second may end before its handler answers: nothing is owed then.
          requests.push({ id: e.id, answerable: e.timeoutMs === 0 || e.timeoutMs >= 1000, afterNotice: index > noticeAt })
          break
        case Kind.Cancel:
          cancelled.add(e.id)
          break
        case Kind.Auth:
          // A server without CURVE checks no AUTH: dropped and counted (badAuth), nothing sent.
          break
        case Kind.Item:
        case Kind.End:
          cancelled.add(e.id)
          bump(out.errors, `${e.id} UNIMPLEMENTED`)
          break
        case Kind.Ping:
          bump(out.pongs, String(e.id))
          break
        case Kind.Reply:
        case Kind.Error:
        case Kind.Pong:
          out.unexpectedKind++
          break
        case Kind.Credit:
          break
      }
    }
  })
  // An id is owed an answer when every REQUEST with it is, none was cancelled, and no notice came after it.
  const blocked = new Set(requests.filter((r) => !r.answerable || (noticeAt >= 0 && !r.afterNotice)).map((r) => r.id))
  for (const r of requests) if (!blocked.has(r.id) && !cancelled.has(r.id)) out.answered.add(r.id)
  return out
}

/** Whether the envelopes received hold every answer owed. */
function satisfied(exp: Expected, received: ReadonlyArray<Envelope | Malformed>): boolean {
  const errors = new Map<string, number>()
  const pongs = new Map<string, number>()
  const answers = new Map<number, number>()
  for (const env of received) {
    if (env.kind === Kind.Error) bump(errors, `${env.id} ${env.code}`)
    if (env.kind === Kind.Pong) bump(pongs, String(env.id))
    if (env.kind === Kind.Error || env.kind === Kind.Reply) answers.set(env.id, (answers.get(env.id) ?? 0) + 1)
  }
  for (const [key, n] of exp.errors) if ((errors.get(key) ?? 0) < n) return false
  for (const [key, n] of exp.pongs) if ((pongs.get(key) ?? 0) < n) return false
  for (const id of exp.answered) {
    let owedErrors = 0
    for (const [key, n] of exp.errors) if (key.startsWith(`${id} `)) owedErrors += n
    if ((answers.get(id) ?? 0) < owedErrors + 1) return false
  }
  return true
}

function missing(exp: Expected, received: ReadonlyArray<Envelope | Malformed>): string {
  const got = received.map((e) => (e.kind === 'malformed' ? 'malformed' : `${e.kind}:${e.id}${e.kind === Kind.Error ? `:${e.code}` : ''}`))
  return `owed errors ${JSON.stringify([...exp.errors])}, pongs ${JSON.stringify([...exp.pongs])}, answers for ${JSON.stringify([...exp.answered])}; received ${JSON.stringify(got.slice(0, 40))}`
}

describe('fuzz: RpcServer fed generated and mutated frames', function () {
  this.timeout(180_000)

  it('answers or counts every bad envelope, never crashes, stays within its memory bound, and serves an honest client after', async () => {
    const server = new RpcServer().implement(Calc, calcHandlers())
    const [endpoint] = await server.bind('tcp://127.0.0.1:*')
    const attacker = new Dealer({ linger: 0, sendHighWaterMark: 100_000 })
    attacker.connect(endpoint!)
    const inbox = new Inbox<Envelope | Malformed>()
    const reading = (async () => {
      try {
        for await (const [frame] of attacker) if (frame !== undefined) inbox.push(...parseFrame(frame))
      } catch {
        // closed
      }
    })()
    const watch = new CrashWatch()
    const rss = new RssWatch()
    const started = performance.now()
    const totals = { runs: 0, messages: 0, envelopes: 0, bytes: 0, answers: 0 }
    try {
      const parameters = fuzzParameters(0x5e7e7, 6000)
      await fc.assert(
        fc.asyncProperty(fc.array(messageArb(frameArb(['calc'])), { minLength: 1, maxLength: 8 }), async (batch) => {
          const run = ++totals.runs
          const exp = expected(batch)
          const before = server.stats.input[0]!
          inbox.clear()
          for (const message of batch) await attacker.send(message)
          totals.messages += batch.length
          totals.envelopes += exp.envelopes
          for (const message of batch) for (const frame of message) totals.bytes += frame.length
          const marker = MARKER_BASE + run
          await attacker.send(encodePing(marker))
          await inbox.until(() => inbox.items.some((e) => e.kind === Kind.Pong && e.id === marker), WAIT_MS, `the marker PONG ${marker}`)
          await inbox.until(() => satisfied(exp, inbox.items), WAIT_MS, 'every answer owed').catch((err: Error) => {
            throw new Error(`${err.message}: ${missing(exp, inbox.items)}`)
          })
          totals.answers += inbox.items.length
          const after = server.stats.input[0]!
          watch.check()
          expect(after.malformed - before.malformed, 'malformed').to.equal(exp.malformed)
          expect(after.badFrameCount - before.badFrameCount, 'badFrameCount').to.equal(exp.badFrames)
          expect(after.unexpectedKind - before.unexpectedKind, 'unexpectedKind').to.equal(exp.unexpectedKind)
          expect(after.unhandled - before.unhandled, 'unhandled').to.equal(0)
          expect(rss.growth, 'RSS growth (MB)').to.be.below(RSS_BOUND_MB)
        }),
        parameters,
      )
      watch.check()
      // The attacker's own connection is still served, and so is an honest client.
      inbox.clear()
      await attacker.send(encodeRequest(MARKER_BASE - 1, 'calc', 'add', 5000, null, encodeCbor({ a: 2, b: 3 })))
      await inbox.until(() => inbox.items.some((e) => e.kind === Kind.Reply && e.id === MARKER_BASE - 1), WAIT_MS, 'the attacker served')
      const honest = new RpcClient({ connect: endpoint!, timeoutMs: 3000 })
      try {
        expect(await honest.service(Calc).add({ a: 2, b: 3 })).to.equal(5)
      } finally {
        await honest.close()
      }
      const s = server.stats
      reportFuzz('server', {
        seed: parameters.seed!,
        runs: totals.runs,
        messages: totals.messages,
        envelopes: totals.envelopes,
        kb: totals.bytes / 1024,
        answers: totals.answers,
        malformed: s.input[0]!.malformed,
        badFrames: s.input[0]!.badFrameCount,
        unexpectedKind: s.input[0]!.unexpectedKind,
        callsReceived: s.calls.received,
        duplicateIds: s.calls.duplicateIds,
        rssGrowthMb: rss.growth,
        seconds: (performance.now() - started) / 1000,
      })
    } finally {
      rss.stop()
      watch.stop()
      attacker.close()
      await reading
      await server.close({ timeoutMs: 500 })
    }
  })
})
