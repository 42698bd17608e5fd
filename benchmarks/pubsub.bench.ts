/**
 * Typed topics next to raw zeromq.js PUB/SUB, in one run, with the same bytes on the wire.
 *
 * Question: what do validation, CBOR, sequence numbers and gap tracking cost on the delivery rate?
 * One publisher and N subscribers on loopback TCP, all in this process (one JS thread), default
 * high-water marks (1000). Both cases publish the same way: as fast as the socket takes messages,
 * yielding to the event loop every BURST (default 200) messages so the subscribers get to run.
 * What the subscribers do not keep up with, libzmq drops: `drops` counts what never arrived; for
 * typed, `gap-reported` is what the subscribers' gap reports and buffer drops added up to (losses
 * after a subscriber's last received message cannot show as gaps).
 *
 * Run: `npm run build && node dist/benchmarks/pubsub.bench.js [--quick]` (BURST=n to change pacing).
 * A full run also writes its table to benchmarks/results/pubsub.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { pathToFileURL } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { Type } from 'typebox'
import { Publisher as RawPub, Subscriber as RawSub } from 'zeromq'
import { defineTopic, Publisher, Subscriber, waitForFlow } from 'zrpc'

const QUICK = process.argv.includes('--quick')
const MESSAGES = QUICK ? 10_000 : 100_000
const SUBSCRIBER_COUNTS = QUICK ? [2] : [1, 4]
const ROUNDS = QUICK ? 1 : 3
const IDLE_MS = 500
const BURST = Number(process.env.BURST ?? 200)
const yieldToReceivers = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

const Ticks = defineTopic('bench', Type.Object({ sym: Type.String(), px: Type.Number(), size: Type.Integer() }))
const tick = { sym: 'AAPL', px: 187.25, size: 100 }

interface Result {
  delivered: number
  drops: number
  gapsReported: number | undefined
  seconds: number
}

/** Waits until every counter reaches `target` or none moved for IDLE_MS; returns when the last moved. */
async function settle(counts: () => number[], target: number, started: number, lastAt: () => number): Promise<number> {
  let last = -1
  let still = performance.now()
  for (;;) {
    const total = counts().reduce((a, b) => a + b, 0)
    if (counts().every((c) => c >= target)) break
    if (total !== last) {
      last = total
      still = performance.now()
    } else if (performance.now() - still > IDLE_MS) break
    await sleep(5)
  }
  return (lastAt() - started) / 1000
}

/** The exact frames the typed publisher writes, captured by a raw SUB. */
async function typedFrames(): Promise<Buffer[]> {
  const pub = new Publisher()
  const sub = new RawSub({ linger: 0 })
  try {
    const [endpoint] = await pub.bind('tcp://127.0.0.1:*')
    sub.connect(endpoint!)
    sub.subscribe('bench\0')
    let got: Buffer[] | undefined
    void sub.receive().then((m) => (got = m), () => undefined)
    while (got === undefined) {
      await pub.publish(Ticks, tick, { key: 'AAPL' })
      await sleep(20)
    }
    return got
  } finally {
    sub.close()
    await pub.close()
  }
}

async function runRaw(n: number, frames: Buffer[]): Promise<Result> {
  const pub = new RawPub({ linger: 0 })
  await pub.bind('tcp://127.0.0.1:*')
  const subs = Array.from({ length: n }, () => new RawSub({ linger: 0 }))
  const counts = subs.map(() => 0)
  const ready = subs.map(() => false)
  let lastAt = 0
  const loops = subs.map(async (sub, i) => {
    sub.connect(pub.lastEndpoint!)
    sub.subscribe('bench\0')
    sub.subscribe('$probe')
    try {
      for await (const [head] of sub) {
        if (head?.[0] === 0x24) ready[i] = true
        else {
          counts[i]!++
          lastAt = performance.now()
        }
      }
    } catch {
      // closed
    }
  })
  while (!ready.every(Boolean)) {
    await pub.send([Buffer.from('$probe')])
    await sleep(20)
  }
  await sleep(50)
  const started = performance.now()
  for (let i = 1; i <= MESSAGES; i++) {
    await pub.send(frames)
    if (i % BURST === 0) await yieldToReceivers()
  }
  const seconds = await settle(() => counts, MESSAGES, started, () => lastAt)
  for (const sub of subs) sub.close()
  pub.close()
  await Promise.all(loops)
  const delivered = counts.reduce((a, b) => a + b, 0)
  return { delivered, drops: n * MESSAGES - delivered, gapsReported: undefined, seconds }
}

async function runTyped(n: number): Promise<Result> {
  const pub = new Publisher()
  const [endpoint] = await pub.bind('tcp://127.0.0.1:*')
  const subs = Array.from({ length: n }, () => new Subscriber({ connect: endpoint! }))
  const counts = subs.map(() => 0)
  let lastAt = 0
  const feeds = subs.map((sub) => sub.subscribe(Ticks))
  await Promise.all(subs.map((sub) => waitForFlow(pub, sub)))
  const loops = feeds.map(async (feed, i) => {
    for await (const msg of feed) {
      if (msg.data.size > 0) counts[i]!++
      lastAt = performance.now()
    }
  })
  await sleep(50)
  const started = performance.now()
  for (let i = 1; i <= MESSAGES; i++) {
    await pub.publish(Ticks, tick, { key: 'AAPL' })
    if (i % BURST === 0) await yieldToReceivers()
  }
  const seconds = await settle(() => counts, MESSAGES, started, () => lastAt)
  // Messages lost before the first one a subscriber saw are not a gap it can see; count the rest.
  const gapsReported = subs.reduce((sum, sub) => sum + sub.stats.missed + sub.stats.dropped, 0)
  await Promise.all(subs.map((sub) => sub.close()))
  await pub.close()
  await Promise.all(loops)
  const delivered = counts.reduce((a, b) => a + b, 0)
  return { delivered, drops: n * MESSAGES - delivered, gapsReported, seconds }
}

const best = (results: Result[]): Result => results.reduce((a, b) => (b.delivered / b.seconds > a.delivered / a.seconds ? b : a))
const rate = (r: Result): number => (r.seconds > 0 ? r.delivered / r.seconds : 0)
const fmt = (x: number): string => Math.round(x).toLocaleString('en-US')

/** Where a full run writes its table (from dist/benchmarks/ back to the source tree). */
const RESULTS = new URL('../../benchmarks/results/', import.meta.url)

export async function main(): Promise<void> {
  const lines: string[] = []
  const print = (line: string): void => {
    lines.push(line)
    console.log(line)
  }
  await measureAll(print)
  if (!QUICK) {
    mkdirSync(RESULTS, { recursive: true })
    writeFileSync(new URL('pubsub.md', RESULTS), `${['Generated by `node dist/benchmarks/run.js pubsub`; do not edit by hand.', '', ...lines].join('\n')}\n`)
    console.log(`I: wrote ${new URL('pubsub.md', RESULTS).pathname}`)
  }
}

async function measureAll(print: (line: string) => void): Promise<void> {
  const frames = await typedFrames()
  print(`# pubsub: typed topics vs raw zeromq.js PUB/SUB, same ${frames.map((f) => f.length).join('+')} bytes per message`)
  print(`node ${process.version}, ${cpus()[0]?.model ?? 'cpu'} x${cpus().length}, ${MESSAGES} messages per run, best of ${ROUNDS}${QUICK ? ' (quick)' : ''}`)
  print('')
  print('| subscribers | case  | delivered | drops | gap-reported | delivered msg/s | typed/raw |')
  print('| ---: | --- | ---: | ---: | ---: | ---: | ---: |')
  for (const n of SUBSCRIBER_COUNTS) {
    const raw: Result[] = []
    const typed: Result[] = []
    for (let round = 0; round < ROUNDS; round++) {
      raw.push(await runRaw(n, frames))
      typed.push(await runTyped(n))
    }
    const r = best(raw)
    const t = best(typed)
    print(`| ${n} | raw   | ${fmt(r.delivered)} | ${fmt(r.drops)} | n/a | ${fmt(rate(r))} | |`)
    print(`| ${n} | typed | ${fmt(t.delivered)} | ${fmt(t.drops)} | ${fmt(t.gapsReported ?? 0)} | ${fmt(rate(t))} | ${((100 * rate(t)) / rate(r)).toFixed(0)}% |`)
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main()
