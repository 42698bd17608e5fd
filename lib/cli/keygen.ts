/**
 * `zrpc keygen`: writes a CURVE key pair, the secret key readable by its owner only.
 *
 *   zrpc keygen --out server     # server.key (secret, mode 0600) and server.pub; prints the public key
 */
import { open, writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { curveKeyPair } from '../transport/curve.js'

export const KEYGEN_USAGE = `usage: zrpc keygen [--out path]

Writes a CURVE key pair (Z85): path.key holds the secret key (readable by its owner only), path.pub the
public key, which is also printed. An existing path.key is never overwritten.

  -h, --help   show this text
  --out        where to write (default: zrpc, giving zrpc.key and zrpc.pub)`

/** Runs `zrpc keygen`; resolves with the exit code: 0, 1 if a file cannot be written, 2 for bad arguments. */
export async function runKeygen(argv: readonly string[]): Promise<number> {
  let values
  try {
    ;({ values } = parseArgs({ args: [...argv], options: { help: { type: 'boolean', short: 'h' }, out: { type: 'string' } }, strict: true }))
  } catch (err) {
    process.stderr.write(`zrpc keygen: ${(err as Error).message}\n${KEYGEN_USAGE}\n`)
    return 2
  }
  if (values.help === true) {
    process.stdout.write(`${KEYGEN_USAGE}\n`)
    return 0
  }
  const path = values.out ?? 'zrpc'
  const { publicKey, secretKey } = curveKeyPair()
  try {
    // 'wx': never overwrite a secret key; the mode is set as the file is made, so it is never readable by others.
    const secret = await open(`${path}.key`, 'wx', 0o600)
    try {
      await secret.writeFile(`${secretKey}\n`)
    } finally {
      await secret.close()
    }
    await writeFile(`${path}.pub`, `${publicKey}\n`, { mode: 0o644 })
  } catch (err) {
    process.stderr.write(`zrpc keygen: ${(err as Error).message}\n`)
    return 1
  }
  process.stdout.write(`${publicKey}\n`)
  return 0
}
