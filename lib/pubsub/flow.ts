/**
 * Waiting until a publisher's messages reach a subscriber: the slow-joiner fix for typed topics.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { Type } from 'typebox'
import type { Publisher } from './publisher.js'
import type { Subscriber } from './subscriber.js'
import { internalTopic } from './topic.js'

/** The probe topic: `$` keeps it out of the names users can define, and out of the value cache. */
const Probe = internalTopic('$zrpc.probe', Type.Null())
const PROBE_INTERVAL_MS = 20

/**
 * Resolves once a probe published by `publisher` arrives at `subscriber`; rejects after `timeoutMs`.
 *
 * Why: a subscription takes a moment to reach the publisher (through a proxy, two hops), and what is
 * published before that is lost. Call it after the data subscriptions: subscriptions travel in
 * order on one path, so a probe arriving proves the earlier ones are in place. Both must live in
 * this process; across processes, publish until the subscriber answers by other means.
 *
 * @example
 * const prices = sub.subscribe(Prices)
 * await waitForFlow(pub, sub)
 */
export async function waitForFlow(publisher: Publisher, subscriber: Subscriber, timeoutMs = 5000): Promise<void> {
  // Keyed by the publisher: a probe proves flow from that publisher only, and each publisher keeps
  // one probe stream however often this is called.
  const key = publisher.id.toString('hex')
  const probe = subscriber.subscribe(Probe, { key })
  let arrived: IteratorResult<unknown, undefined> | undefined
  void probe.next().then((result) => (arrived = result))
  try {
    for (const deadline = Date.now() + timeoutMs; arrived === undefined; ) {
      if (Date.now() > deadline) throw new Error(`no probe from the publisher in ${timeoutMs} ms`)
      await publisher.publish(Probe, null, { key })
      await sleep(PROBE_INTERVAL_MS)
    }
    if (arrived.done === true) throw new Error('subscriber closed while waiting for flow')
  } finally {
    await probe.return()
  }
}
