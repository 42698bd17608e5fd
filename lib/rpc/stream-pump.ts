/**
 * The server side of a stream: pulls items from the handler's iterator only while the caller has
 * granted credit, and sends each as an ITEM.
 *
 * ```
 *   client  REQUEST (window W) ─►  pump: credit W ─► next() ─► ITEM ─► credit W-1 ... 0: wait
 *   client  CREDIT n           ─►  credit += n, pull again
 *   handler done               ─►  REPLY (result null): the stream's last message
 *   handler throws / gives up  ─►  ERROR
 * ```
 * So a slow reader never makes the server buffer: the generator is suspended at its `yield` while
 * there is no credit, at most one item ahead of what the caller allowed. When the call is given up
 * (deadline, CANCEL, the caller gone, the server closing) the pump stops waiting at once and closes
 * the iterator (`return()`), which runs the generator's `finally` blocks as soon as it reaches its
 * next `yield`; the call's slot is held until then, as a unary handler's is until it settles.
 */
import { LazyItem } from '../codec/envelope.js'
import type { ActiveCall } from './peer-calls.js'

/** A stream's REPLY result: CBOR null, reserved for a trailer in a later minor version. */
export const STREAM_END_RESULT: Uint8Array = Uint8Array.of(0xf6)

const GIVEN_UP = Symbol('given up')

/**
 * Runs one stream call to its end. Resolves with the REPLY result when the iterator is done; rejects
 * with what the iterator threw. When the call is given up it resolves too (the dispatcher sends
 * nothing for a call given up).
 */
export async function pumpStream(call: ActiveCall, items: AsyncIterator<Uint8Array>): Promise<Uint8Array> {
  // Reading the signal puts the call's deadline on the dispatcher's wheel, so a stream waiting for
  // credit wakes when its deadline passes.
  void call.signal
  let open = true
  try {
    for (;;) {
      if (call.credit === 0) await call.creditOrEnd()
      if (call.aborted) return STREAM_END_RESULT
      const next = await untilGivenUp(call, items.next())
      if (next === GIVEN_UP) return STREAM_END_RESULT
      if (next.done === true) {
        open = false
        return STREAM_END_RESULT
      }
      call.credit--
      call.reply(new LazyItem(call.id, next.value), call.id, true)
    }
  } catch (err) {
    open = false
    throw err
  } finally {
    // Past its deadline before the wheel said so: the handler's signal must still say why it stops.
    if (call.aborted && call.reason === undefined) call.expire()
    if (open) await items.return?.().catch(() => undefined)
  }
}

/**
 * `pending`, or GIVEN_UP as soon as the call is given up, whichever comes first. One hook on the
 * call, set per item and cleared when the item comes: no listener or race reaction piles up over a
 * long stream.
 */
function untilGivenUp<T>(call: ActiveCall, pending: Promise<T>): Promise<T | typeof GIVEN_UP> {
  // The item that was being made when the call was given up is dropped, and so is its error.
  pending.catch(() => undefined)
  if (call.aborted) return Promise.resolve(GIVEN_UP)
  return new Promise<T | typeof GIVEN_UP>((resolve, reject) => {
    call.onGiveUp = () => resolve(GIVEN_UP)
    pending.then(
      (value) => {
        call.onGiveUp = undefined
        resolve(value)
      },
      (err: unknown) => {
        call.onGiveUp = undefined
        reject(err)
      },
    )
  })
}
