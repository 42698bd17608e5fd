/**
 * Compile-only: tsc checks this file as part of `npm test`. Each @ts-expect-error must be an error,
 * or the build fails, so these lines prove that wrong publishes and wrong reads do not type-check.
 */
import { Type } from 'typebox'
import { defineTopic, type Publisher, type Subscriber, type TopicMessage } from '../../lib/index.js'

const Prices = defineTopic('prices', Type.Object({ sym: Type.String(), px: Type.Number() }))

export async function typeChecks(pub: Publisher, sub: Subscriber): Promise<void> {
  await pub.publish(Prices, { sym: 'AAPL', px: 1 }, { key: 'AAPL' })
  for await (const msg of sub.subscribe(Prices, { key: 'AAPL' })) {
    const px: number = msg.data.px
    const whole: TopicMessage<{ sym: string; px: number }> = msg
    void px
    void whole
    // @ts-expect-error px is a number
    const wrong: string = msg.data.px
    void wrong
    // @ts-expect-error no such field
    void msg.data.volume
  }

  // @ts-expect-error px is a number
  await pub.publish(Prices, { sym: 'AAPL', px: '1' })
  // @ts-expect-error sym is missing
  await pub.publish(Prices, { px: 1 })
  // @ts-expect-error keys are strings
  await pub.publish(Prices, { sym: 'AAPL', px: 1 }, { key: 7 })
  // @ts-expect-error keys are strings
  sub.subscribe(Prices, { key: 7 })
}
