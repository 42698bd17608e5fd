/**
 * A broker worker: one Majordomo worker (its own DEALER, one request at a time) feeding a Dispatcher.
 * A server runs several per service to handle several requests at once through a broker.
 *
 * ```
 *   broker  ->  [ '' ][ 'MDPW01' ][ 0x02 ][ client ][ '' ][ frame: one REQUEST envelope ]
 *           <-  [ '' ][ 'MDPW01' ][ 0x03 ][ client ][ '' ][ frame: its REPLY / ERROR ]
 * ```
 * MDP requires exactly one reply per request before the next one comes, so every request is
 * answered, even one the dispatcher ends without a reply (its deadline passed): the broker would
 * otherwise count this worker busy for ever.
 */
import { MajordomoWorker, type MajordomoRequest } from '../../patterns/majordomo-worker.js'
import { DEFAULT_CBOR_LIMITS, type CborLimits } from '../codec/cbor.js'
import { Kind, encodeError, parseFrame } from '../codec/envelope.js'
import type { Dispatcher } from './dispatcher.js'

export interface BrokerWorkerOptions {
  readonly maxMessageSize: number
  /** Must match the broker's. */
  readonly heartbeatMs: number
  readonly liveness: number
}

/** Input the worker could not serve. */
export interface BrokerWorkerStats {
  /** Bodies that were not exactly one readable REQUEST envelope, answered with an error. */
  malformed: number
}

let workers = 0
const MAX_TIMER_MS = 2 ** 31 - 1

export class BrokerWorker {
  private readonly worker: MajordomoWorker
  private readonly limits: CborLimits
  private readonly loop: Promise<void>
  private readonly peer: string
  readonly stats: BrokerWorkerStats = { malformed: 0 }

  constructor(
    private readonly dispatcher: Dispatcher,
    endpoint: string,
    service: string,
    private readonly options: BrokerWorkerOptions,
  ) {
    this.peer = `mdp-worker-${++workers}`
    this.limits = { ...DEFAULT_CBOR_LIMITS, maxBytes: options.maxMessageSize }
    this.worker = new MajordomoWorker(endpoint, service, {
      heartbeatMs: options.heartbeatMs,
      liveness: options.liveness,
      maxMessageSize: options.maxMessageSize,
    })
    this.loop = this.run()
  }

  /** Sends DISCONNECT and closes the socket; call after the dispatcher has drained. */
  async close(): Promise<void> {
    await this.worker.close()
    await this.loop
  }

  private async run(): Promise<void> {
    for await (const request of this.worker) await this.serve(request)
  }

  private async serve(request: MajordomoRequest): Promise<void> {
    const [frame] = request.body
    const envelopes = request.body.length === 1 && frame !== undefined ? parseFrame(frame, this.limits) : []
    const [env] = envelopes
    if (envelopes.length !== 1 || env === undefined || env.kind !== Kind.Request) {
      this.stats.malformed++
      const id = env?.id ?? 0
      const reason = env?.kind === 'malformed' ? env.reason : 'expected one REQUEST envelope'
      await request.reply([encodeError(id, 'INVALID_ARGUMENT', reason)])
      return
    }
    await new Promise<void>((resolve) => {
      let answered = false
      const answer = (out: Buffer): void => {
        if (answered) return
        answered = true
        clearTimeout(timer)
        void request.reply([out]).then(() => resolve())
      }
      // Past the deadline the dispatcher drops the result; answer anyway, the caller has given up.
      const timer = setTimeout(() => answer(encodeError(env.id, 'DEADLINE_EXCEEDED', 'deadline exceeded')), Math.min(env.timeoutMs + 50, MAX_TIMER_MS))
      this.dispatcher.handle(env, this.peer, (out, id) => {
        if (out.length > this.options.maxMessageSize) {
          out = encodeError(id, 'RESOURCE_EXHAUSTED', `reply of ${out.length} bytes exceeds maxMessageSize ${this.options.maxMessageSize}`)
        }
        answer(out)
      })
    })
  }
}
