/**
 * How a broker worker judges its broker's silence when the two may heartbeat at different rates.
 *
 * The worker answers each broker HEARTBEAT with its own, so the broker sees beats at its own rate
 * whatever the worker is set to; and it counts the broker's silence against
 * max(its own interval, the interval it observes between the broker's beats) x liveness, so a
 * broker that beats slower than the worker is not taken for dead. Until it has seen two beats it
 * waits at least the default interval (2500 ms) x liveness for the first.
 */

/** The interval assumed for a broker not observed yet: the MDP reference default. */
const FIRST_WAIT_MS = 2500
/** Observed intervals this far from the worker's own (either way) count as a mismatch. */
const MISMATCH_RATIO = 1.5
/** Consecutive mismatched intervals before the warning: one late timer is not a mismatch. */
const MISMATCH_STREAK = 2

/**
 * Broker liveness as one worker sees it.
 *
 * @example
 * const beats = new BrokerBeats(1000, 3, (observedMs) => warn(observedMs))
 * beats.heard(Date.now()); if (beats.silent(Date.now())) reconnect()
 */
export class BrokerBeats {
  private lastHeard = Date.now()
  private lastBeat: number | undefined
  private streak = 0
  private warned = false
  /** The broker's heartbeat interval last observed, in ms (0 until two beats were seen). */
  observedMs = 0

  constructor(
    private readonly ownMs: number,
    private readonly liveness: number,
    private readonly onMismatch: (observedMs: number) => void,
  ) {}

  /** A new connection: nothing heard yet. */
  reset(now: number): void {
    this.lastHeard = now
    this.lastBeat = undefined
  }

  /** Any message from the broker. */
  heard(now: number): void {
    this.lastHeard = now
  }

  /** A gap that is not a heartbeat interval (a request was being served): do not measure across it. */
  skip(): void {
    this.lastBeat = undefined
  }

  /** A HEARTBEAT from the broker: measures the interval since the previous one. */
  beat(now: number): void {
    this.lastHeard = now
    if (this.lastBeat !== undefined && now > this.lastBeat) {
      this.observedMs = now - this.lastBeat
      const ratio = this.observedMs / this.ownMs
      this.streak = ratio > MISMATCH_RATIO || ratio < 1 / MISMATCH_RATIO ? this.streak + 1 : 0
      if (this.streak >= MISMATCH_STREAK && !this.warned) {
        this.warned = true
        this.onMismatch(this.observedMs)
      }
    }
    this.lastBeat = now
  }

  /** How long the broker may stay silent before it counts as gone. */
  get patienceMs(): number {
    return Math.max(this.ownMs, this.observedMs > 0 ? this.observedMs : FIRST_WAIT_MS) * this.liveness
  }

  silent(now: number): boolean {
    return now - this.lastHeard > this.patienceMs
  }
}
