/**
 * Topic definitions, and how a topic name and key become the ZeroMQ prefix that libzmq filters on.
 *
 * ```
 *   frame 0  =  name 0x00 key 0x00        "prices\0AAPL\0"   one stream
 *   all keys =  name 0x00                 "prices\0"         prefix of every stream of the topic
 *   no key   =  name 0x00 0x00            "prices\0\0"       the key is the empty string
 * ```
 * The NUL after the name and after the key is what keeps `prices` from matching `prices2` and key
 * `AAPL` from matching `AAPLX`: neither names nor keys may contain NUL. docs/protocol.md section 7.
 */
import type { Static, TSchema } from 'typebox'
import { Compile } from 'typebox/compile'
import { RpcError } from '../errors.js'

/** A named topic with the TypeBox schema of its messages: what {@link defineTopic} returns. */
export interface TopicDefinition<S extends TSchema = TSchema> {
  readonly name: string
  readonly schema: S
}

/** The type of a topic's messages. */
export type DataOf<T extends TopicDefinition> = Static<T['schema']>

const NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/
/** Longest key in UTF-8 bytes: keys are in every message's first frame. */
export const MAX_KEY_BYTES = 255

/**
 * Declares a topic: a name and the schema every message on it must match.
 *
 * Why a value and not a string: it carries the message type to `publish` and `subscribe`, and the
 * compiled validator both sides use.
 *
 * @example
 * const Prices = defineTopic('prices', Type.Object({ sym: Type.String(), px: Type.Number() }))
 */
export function defineTopic<const S extends TSchema>(name: string, schema: S): TopicDefinition<S> {
  if (!NAME.test(name)) throw new TypeError(`invalid topic name ${JSON.stringify(name)}: use letters, digits, _ . -`)
  return Object.freeze({ name, schema })
}

/** A topic for zrpc's own use (names outside the user's NAME space, such as flow probes). */
export function internalTopic<const S extends TSchema>(name: string, schema: S): TopicDefinition<S> {
  return Object.freeze({ name, schema })
}

/** Throws INVALID_ARGUMENT for a key that cannot be a filter segment. */
export function checkKey(key: string): void {
  if (key.includes('\0')) throw new RpcError('INVALID_ARGUMENT', 'a topic key must not contain NUL')
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw new RpcError('INVALID_ARGUMENT', `a topic key is at most ${MAX_KEY_BYTES} bytes`)
}

/** The first frame of a message on one stream (topic and key). */
export function streamFrame(topic: string, key: string): Buffer {
  return Buffer.from(`${topic}\0${key}\0`)
}

/** The subscription prefix: every key of the topic, or one key. */
export function subscriptionPrefix(topic: string, key?: string): Buffer {
  return key === undefined ? Buffer.from(`${topic}\0`) : streamFrame(topic, key)
}

/** Splits a first frame into topic and key; undefined if it is not `name\0key\0`. */
export function parseStreamFrame(frame: Buffer): { topic: string; key: string } | undefined {
  const first = frame.indexOf(0)
  if (first <= 0 || frame.length < first + 2 || frame[frame.length - 1] !== 0) return undefined
  const second = frame.indexOf(0, first + 1)
  if (second !== frame.length - 1) return undefined
  return { topic: frame.toString('utf8', 0, first), key: frame.toString('utf8', first + 1, second) }
}

/** Returns undefined when `value` matches, else an RpcError carrying the first issues. */
export type TopicCheck = (value: unknown) => RpcError | undefined

const checks = new WeakMap<TopicDefinition, TopicCheck>()
const MAX_ISSUES = 20

/** The compiled validator of a topic, built on first use and shared. */
export function checkerFor(topic: TopicDefinition): TopicCheck {
  let check = checks.get(topic)
  if (check === undefined) {
    const validator = Compile(topic.schema)
    const message = `invalid message for topic ${topic.name}`
    check = (value) => {
      if (validator.Check(value)) return undefined
      const issues = validator
        .Errors(value)
        .slice(0, MAX_ISSUES)
        .map((e) => ({ path: e.instancePath, message: e.message }))
      const first = issues[0]
      return new RpcError('INVALID_ARGUMENT', first === undefined ? message : `${message}: ${first.path || '/'} ${first.message}`, issues)
    }
    checks.set(topic, check)
  }
  return check
}
