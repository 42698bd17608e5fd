import { Type } from 'typebox'
import { defineTopic, Publisher, Subscriber, waitForFlow } from 'zrpc'

const Prices = defineTopic('prices', Type.Object({ sym: Type.String(), px: Type.Number() }))

const pub = new Publisher({ lastValueCache: true })
const [endpoint] = await pub.bind('tcp://127.0.0.1:*')
const sub = new Subscriber({ connect: endpoint!, onGap: (gap) => console.log('missed', gap.missed, 'on', gap.key) })

const aapl = sub.subscribe(Prices, { key: 'AAPL' }) // filtered in libzmq: no MSFT, no AAPLX
await waitForFlow(pub, sub) // the subscription has reached the publisher
await pub.publish(Prices, { sym: 'MSFT', px: 410 }, { key: 'MSFT' })
await pub.publish(Prices, { sym: 'AAPL', px: 187 }, { key: 'AAPL' })

for await (const msg of aapl) {
  console.log(msg.key, msg.seq, msg.data.px) // msg.data is { sym: string; px: number }
  break // leaving the loop unsubscribes
}

const late = new Subscriber({ connect: endpoint! })
for await (const msg of late.subscribe(Prices, { key: 'AAPL' })) {
  console.log('late joiner got', msg.data.px, 'from the last-value cache')
  break
}

await late.close()
await sub.close()
await pub.close()
