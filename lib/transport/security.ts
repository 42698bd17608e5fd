/**
 * A socket's security, one mechanism for every zrpc component: the checked CURVE options, the
 * libzmq options they become, the allow list registered with the ZAP handler before the socket
 * listens, its counters, and the warning for a plaintext socket that other hosts can reach.
 *
 * The role follows the options: with `serverKey` the socket is a CURVE client (it connects to the
 * holder of that key), without it a CURVE server (others connect to it, checked against `allow`).
 *
 * @example
 * const security = SocketSecurity.for(options.curve, 'RpcServer', 'bind', options.onRefused)
 * const socket = new TransportSocket({ ..., socketOptions: security.socketOptions })
 * await security.ready()   // before bind
 */
import { encodeAuth } from '../codec/envelope.js'
import { checkCurve, curveSocketOptions, keyProof, proofHolds, warnIfExposed, z85Decode, z85Encode, type CurveOptions } from './curve.js'
import { newZapDomain, registerAllowList, type ZapStats } from './zap.js'

/** Which roles a component's sockets may take. */
export type SecurityRole = 'bind' | 'connect' | 'either'

export class SocketSecurity {
  /** libzmq options for the socket (empty without CURVE). */
  readonly socketOptions: Readonly<Record<string, unknown>>
  private readonly zapDomain: string | undefined
  private registration: Promise<{ stats: ZapStats; unregister: () => void }> | undefined
  private registered: { stats: ZapStats; unregister: () => void } | undefined
  private closed = false

  private constructor(
    private readonly curve: CurveOptions | undefined,
    private readonly onRefused: ((publicKey: string, address: string) => void) | undefined,
  ) {
    const role = curve?.serverKey !== undefined ? 'connect' : 'bind'
    this.zapDomain = curve !== undefined && role === 'bind' && curve.allow !== undefined ? newZapDomain() : undefined
    this.socketOptions = curve === undefined ? {} : curveSocketOptions(curve, role, this.zapDomain)
  }

  /** Checks `curve` for `role` (throws a TypeError saying what is wrong) and prepares the socket options. */
  static for(curve: CurveOptions | undefined, owner: string, role: SecurityRole, onRefused?: (publicKey: string, address: string) => void): SocketSecurity {
    if (curve !== undefined) {
      const actual = curve.serverKey !== undefined ? 'connect' : 'bind'
      if (role !== 'either' && role !== actual) {
        throw new TypeError(role === 'bind' ? `${owner}: curve.serverKey is for connecting sockets; a ${owner} takes { publicKey, secretKey, allow? }` : `${owner}: curve.serverKey (the server's public key) is required`)
      }
      checkCurve(curve, actual, owner)
    }
    return new SocketSecurity(curve, onRefused)
  }

  /** Registers the allow list with the ZAP handler (once); await it before the socket binds. */
  async ready(): Promise<void> {
    if (this.zapDomain === undefined || this.closed) return
    this.registration ??= registerAllowList(this.zapDomain, this.curve!.allow!, this.onRefused)
    this.registered = await this.registration
  }

  /**
   * The AUTH envelope a CURVE client sends first on each connection: its key and the proof that it
   * holds it (docs/security.md, "Who is calling"). Undefined without CURVE, or for a binding socket.
   */
  authEnvelope(): Buffer | undefined {
    const curve = this.curve
    if (curve?.serverKey === undefined) return undefined
    return (this.auth ??= encodeAuth(z85Decode(curve.publicKey), keyProof(curve, curve.serverKey)))
  }

  private auth: Buffer | undefined

  /** A binding socket's check of an AUTH envelope: the client's key (Z85) if the proof holds, else undefined. */
  verify(publicKey: Uint8Array, proof: Uint8Array): string | undefined {
    const curve = this.curve
    if (curve === undefined || curve.serverKey !== undefined) return undefined
    const key = z85Encode(publicKey)
    try {
      return proofHolds(curve, key, proof) ? key : undefined
    } catch {
      // Not a key X25519 accepts: no proof can hold.
      return undefined
    }
  }

  /** Whether this socket uses CURVE as a server (so AUTH envelopes mean something). */
  get verifies(): boolean {
    return this.curve !== undefined && this.curve.serverKey === undefined
  }

  /** Warns once per process if `endpoint`, just bound, is reachable by other hosts and plaintext. */
  bound(endpoint: string): void {
    warnIfExposed(endpoint, this.curve)
  }

  /** The allow list's counters, when there is one. */
  get stats(): ZapStats | undefined {
    const stats = this.registered?.stats
    return stats === undefined ? undefined : { ...stats, lastRefused: [...stats.lastRefused] }
  }

  /** Unregisters the allow list (after the socket has closed). */
  async close(): Promise<void> {
    this.closed = true
    ;(await this.registration?.catch(() => undefined))?.unregister()
  }
}
