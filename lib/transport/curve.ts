/**
 * CURVE security (ZeroMQ RFC 26, CurveZMQ) for zrpc sockets: one option object of the same shape for
 * every socket, checked before any socket exists, turned into libzmq's options here.
 *
 * ```
 *   binding side (server, broker)            connecting side (client, worker)
 *   curve: { publicKey, secretKey, allow? }   curve: { publicKey, secretKey, serverKey }
 *           └─ allow: client keys let in (ZAP, zap.ts); omitted: any client that knows serverKey
 * ```
 * Keys are Z85 text (40 characters for 32 bytes), as `curveKeyPair()` and `zrpc keygen` make them.
 */
import { createHmac, createPrivateKey, createPublicKey, diffieHellman, timingSafeEqual } from 'node:crypto'
import { curveKeyPair as zmqCurveKeyPair } from 'zeromq'

/** A CURVE key pair, Z85 text. Keep `secretKey` secret; hand `publicKey` to peers. */
export interface CurveKeyPair {
  readonly publicKey: string
  readonly secretKey: string
}

/** CURVE for one zrpc socket; the same shape everywhere. */
export interface CurveOptions {
  /** This side's public key (Z85). */
  readonly publicKey: string
  /** This side's secret key (Z85). */
  readonly secretKey: string
  /** Connecting sockets: the public key of the server (or broker) connected to. */
  readonly serverKey?: string
  /**
   * Binding sockets: the client public keys let in, as a list, or a file of Z85 keys one a line
   * (`#` starts a comment), read again when it changes. Omitted: any client that knows the server's key.
   */
  readonly allow?: readonly string[] | { readonly file: string }
}

/** A fresh key pair. */
export function curveKeyPair(): CurveKeyPair {
  const { publicKey, secretKey } = zmqCurveKeyPair()
  return { publicKey, secretKey }
}

const Z85 = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#'
const Z85_VALUE = new Map([...Z85].map((c, i) => [c, i]))

/** Whether `key` is a CURVE key in Z85: 40 characters of the Z85 alphabet. */
export function isZ85Key(key: unknown): key is string {
  return typeof key === 'string' && key.length === 40 && [...key].every((c) => Z85_VALUE.has(c))
}

/** 32 key bytes as Z85 text (ZAP hands the client's key over as bytes). */
export function z85Encode(bytes: Uint8Array): string {
  if (bytes.length % 4 !== 0) throw new RangeError('Z85 encodes a multiple of 4 bytes')
  let out = ''
  for (let i = 0; i < bytes.length; i += 4) {
    let value = ((bytes[i]! << 24) >>> 0) + (bytes[i + 1]! << 16) + (bytes[i + 2]! << 8) + bytes[i + 3]!
    let chunk = ''
    for (let j = 0; j < 5; j++) {
      chunk = Z85[value % 85]! + chunk
      value = Math.floor(value / 85)
    }
    out += chunk
  }
  return out
}

/** Z85 text as bytes (a key: 40 characters, 32 bytes). */
export function z85Decode(text: string): Buffer {
  if (text.length % 5 !== 0) throw new RangeError('Z85 decodes a multiple of 5 characters')
  const out = Buffer.alloc((text.length / 5) * 4)
  for (let i = 0, at = 0; i < text.length; i += 5, at += 4) {
    let value = 0
    for (let j = 0; j < 5; j++) {
      const digit = Z85_VALUE.get(text[i + j]!)
      if (digit === undefined) throw new RangeError(`not Z85: ${JSON.stringify(text[i + j])}`)
      value = value * 85 + digit
    }
    out.writeUInt32BE(value >>> 0, at)
  }
  return out
}

const PROOF_LABEL = 'zrpc/1 peer key'

/**
 * The proof that binds a connection to a client key (the AUTH envelope): an HMAC, keyed by the
 * X25519 shared secret of one side's key pair and the other's public key, so client and server
 * compute the same bytes and nobody else can. It travels inside the CURVE connection, so it cannot
 * be read off the wire and shown on another connection.
 */
export function keyProof(own: CurveKeyPair, peerPublicKey: string): Buffer {
  const d = z85Decode(own.secretKey).toString('base64url')
  const x = z85Decode(own.publicKey).toString('base64url')
  const privateKey = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d, x }, format: 'jwk' })
  const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: z85Decode(peerPublicKey).toString('base64url') }, format: 'jwk' })
  return createHmac('sha256', diffieHellman({ privateKey, publicKey })).update(PROOF_LABEL).digest()
}

/** Whether `proof` shows that the holder of `clientKey` (Z85) is on this connection, for a server with `own` keys. */
export function proofHolds(own: CurveKeyPair, clientKey: string, proof: Uint8Array): boolean {
  const expected = keyProof(own, clientKey)
  return proof.length === expected.length && timingSafeEqual(expected, proof)
}

/**
 * Checks a socket's CURVE options for its role; throws a TypeError that says what is wrong, so a
 * typo fails at start-up and not as a handshake that never completes.
 */
export function checkCurve(curve: CurveOptions, role: 'bind' | 'connect', owner: string): void {
  if (typeof curve !== 'object' || curve === null) throw new TypeError(`${owner}: curve must be { publicKey, secretKey${role === 'connect' ? ', serverKey' : ', allow?'} }`)
  for (const name of ['publicKey', 'secretKey'] as const) {
    if (!isZ85Key(curve[name])) throw new TypeError(`${owner}: curve.${name} must be a 40-character Z85 key (curveKeyPair() or zrpc keygen make them)`)
  }
  if (role === 'connect' && !isZ85Key(curve.serverKey)) throw new TypeError(`${owner}: curve.serverKey must be the server's 40-character Z85 public key`)
  if (role === 'bind' && curve.allow !== undefined && Array.isArray(curve.allow)) {
    const bad = (curve.allow as readonly unknown[]).find((key) => !isZ85Key(key))
    if (bad !== undefined) throw new TypeError(`${owner}: curve.allow holds ${JSON.stringify(bad)}, which is not a 40-character Z85 public key`)
  }
}

/** libzmq options for a socket with `curve` in `role`; `zapDomain` names its allow list (zap.ts). */
export function curveSocketOptions(curve: CurveOptions, role: 'bind' | 'connect', zapDomain?: string): Record<string, unknown> {
  if (role === 'bind') return { curveServer: true, curvePublicKey: curve.publicKey, curveSecretKey: curve.secretKey, ...(zapDomain !== undefined && { zapDomain }) }
  return { curveServerKey: curve.serverKey, curvePublicKey: curve.publicKey, curveSecretKey: curve.secretKey }
}

let warnedPlaintext = false

/**
 * Warns once per process (a Node warning, `ZRPC_PLAINTEXT`) when a socket without CURVE binds an
 * address other networks can reach: traffic there is readable and anyone can connect.
 */
export function warnIfExposed(endpoint: string, curve: CurveOptions | undefined): void {
  if (curve !== undefined || warnedPlaintext) return
  const match = /^tcp:\/\/(.+):[^:]+$/.exec(endpoint)
  if (match === null) return
  const host = match[1]!.replace(/^\[|\]$/g, '')
  if (host.startsWith('127.') || host === '::1' || host === 'localhost') return
  warnedPlaintext = true
  process.emitWarning(`${endpoint} is bound without CURVE: anyone who can reach it can call it and read its traffic; pass curve (docs/security.md)`, { code: 'ZRPC_PLAINTEXT' })
}
