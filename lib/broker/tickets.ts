/**
 * Deferred calls: the broker's table of tickets. A caller submits a call and gets a ticket once the
 * broker has accepted it; the broker itself is the call's client from then on, so the call runs
 * whether or not its submitter is still there; anyone holding the ticket collects the outcome later.
 *
 * ```
 *   submit ─► queued ─► running ─► done | failed ──collect / retention──► forgotten
 *                │          └────► cancelled (cancel: CANCEL to the worker)
 *                └─cancel─► cancelled      deadline passed in the queue: expired
 * ```
 * Bounded: at most `maxTickets` tickets, and `maxResultBytes` of kept outcomes (a submit past either
 * is refused with RESOURCE_EXHAUSTED); a finished ticket is kept `retentionMs` unless collected first.
 */
import { randomBytes } from 'node:crypto'
import type { StatusCode } from '../errors.js'

export type TicketState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled' | 'expired'

/** How a finished ticket's call ended. */
export type TicketOutcome = { readonly ok: true; readonly result: Uint8Array } | { readonly ok: false; readonly code: StatusCode; readonly message: string; readonly details: unknown }

export interface Ticket {
  readonly id: string
  readonly service: string
  readonly method: string
  /** The id of the broker's own REQUEST for it (the broker is the call's client). */
  readonly callId: number
  readonly submittedAt: number
  state: TicketState
  finishedAt: number
  outcome: TicketOutcome | undefined
  /** Collects waiting for the end. */
  readonly waiters: Set<() => void>
}

export interface TicketBounds {
  readonly maxTickets: number
  readonly maxResultBytes: number
  readonly retentionMs: number
}

export const TICKET_DEFAULTS: TicketBounds = { maxTickets: 100_000, maxResultBytes: 64 * 1024 * 1024, retentionMs: 60 * 60 * 1000 }

/** Bytes charged to a kept outcome on top of its result or message. */
const OUTCOME_OVERHEAD_BYTES = 256

/** A summary of one ticket, as BrokerAdmin lists them. */
export interface TicketSummary {
  readonly ticket: string
  readonly service: string
  readonly method: string
  readonly state: TicketState
  readonly submittedAt: number
  readonly finishedAt: number
}

/**
 * The tickets of one broker.
 *
 * @example
 * const tickets = new Tickets(TICKET_DEFAULTS)
 * const t = tickets.create('calc', 'add', callId, Date.now())
 * tickets.finish(t, { ok: true, result }, Date.now())
 */
export class Tickets {
  private readonly byId = new Map<string, Ticket>()
  private readonly byCall = new Map<number, Ticket>()
  private resultBytes = 0

  constructor(private readonly bounds: TicketBounds) {}

  get size(): number {
    return this.byId.size
  }

  get bytes(): number {
    return this.resultBytes
  }

  /** Why a new ticket would be refused now, or undefined. */
  refusal(): string | undefined {
    if (this.byId.size >= this.bounds.maxTickets) return `the broker holds ${this.byId.size} tickets, its maximum; collect some first`
    if (this.resultBytes >= this.bounds.maxResultBytes) return `the broker keeps ${this.resultBytes} bytes of uncollected results, its maximum; collect some first`
    return undefined
  }

  /** A new ticket for the call the broker is about to queue as `callId`; `id` given when restored from disk. */
  create(service: string, method: string, callId: number, now: number, id: string = newTicketId()): Ticket {
    const ticket: Ticket = { id, service, method, callId, submittedAt: now, state: 'queued', finishedAt: 0, outcome: undefined, waiters: new Set() }
    this.byId.set(id, ticket)
    this.byCall.set(callId, ticket)
    return ticket
  }

  get(id: string): Ticket | undefined {
    return this.byId.get(id)
  }

  byCallId(callId: number): Ticket | undefined {
    return this.byCall.get(callId)
  }

  /** Its call went to a worker. */
  running(ticket: Ticket): void {
    if (ticket.state === 'queued') ticket.state = 'running'
  }

  /** Its call ended: keeps the outcome and wakes the collects waiting. A ticket ends once. */
  finish(ticket: Ticket, state: 'done' | 'failed' | 'cancelled' | 'expired', outcome: TicketOutcome, now: number): void {
    if (ticket.outcome !== undefined) return
    ticket.state = state
    ticket.outcome = outcome
    ticket.finishedAt = now
    this.resultBytes += outcomeBytes(outcome)
    this.byCall.delete(ticket.callId)
    for (const wake of [...ticket.waiters]) wake()
  }

  /** Forgets a ticket (collected, or past its retention). */
  remove(ticket: Ticket): void {
    if (this.byId.get(ticket.id) !== ticket) return
    this.byId.delete(ticket.id)
    this.byCall.delete(ticket.callId)
    if (ticket.outcome !== undefined) this.resultBytes -= outcomeBytes(ticket.outcome)
    for (const wake of [...ticket.waiters]) wake()
  }

  /** Finished tickets kept past their retention; the caller removes them (and their stored copy). */
  expired(now: number): Ticket[] {
    const out: Ticket[] = []
    for (const ticket of this.byId.values()) if (ticket.outcome !== undefined && now - ticket.finishedAt >= this.bounds.retentionMs) out.push(ticket)
    return out
  }

  list(): TicketSummary[] {
    return [...this.byId.values()].map(({ id, service, method, state, submittedAt, finishedAt }) => ({ ticket: id, service, method, state, submittedAt, finishedAt }))
  }
}

/** A ticket: 16 random bytes in hex, not guessable (anyone holding it may collect or cancel). */
export function newTicketId(): string {
  return randomBytes(16).toString('hex')
}

function outcomeBytes(outcome: TicketOutcome): number {
  return OUTCOME_OVERHEAD_BYTES + (outcome.ok ? outcome.result.byteLength : Buffer.byteLength(outcome.message))
}
