/**
 * Per-call cost of the codec's read path, in ns, for the rpc echo bench's shapes: a REQUEST and a
 * REPLY of `{ data: 'x' * N }`, alone in a frame and 16 to a frame, each read from a frame Buffer the
 * process has not seen (as zeromq.js hands a new Buffer per frame), then the payload decoded.
 *
 *   node --expose-gc dist/benchmarks/micro/codec.js [rounds]
 *
 * Figures only mean something side by side in one run; compare two builds by running both.
 */
import { DEFAULT_CBOR_LIMITS, decodeCbor, encodeCbor } from '../../lib/codec/cbor.js'
import { encodeReply, encodeRequest, parseFrame, readFrameInChunks, scanFrame, type Envelope, type Malformed } from '../../lib/codec/envelope.js'

const rounds = Number(process.argv[2] ?? 5)

/** Fresh copies of `frame`, each read once, so no per-Buffer cache hits as it would on one reused Buffer. */
function copies(frame: Uint8Array): Buffer[] {
  return Array.from({ length: Math.min(20_000, Math.floor(2 ** 26 / frame.length)) }, () => Buffer.from(frame))
}

function payloadOf(env: Envelope | Malformed): Uint8Array {
  if (env.kind === 0) return env.params
  if (env.kind === 1) return env.result
  throw new Error('unexpected envelope')
}

function time(label: string, frame: Buffer, perFrame: number, fn: (frame: Buffer) => unknown): void {
  let sink = 0
  const results: number[] = []
  for (let r = -2; r < rounds; r++) {
    const frames = copies(frame)
    // Collect the last round's frames now, not in the middle of this one.
    ;(globalThis as { gc?: () => void }).gc?.()
    const t0 = process.hrtime.bigint()
    for (const f of frames) sink ^= fn(f) === undefined ? 1 : 0
    if (r >= 0) results.push(Number(process.hrtime.bigint() - t0) / frames.length / perFrame)
  }
  results.sort((a, b) => a - b)
  const median = results[results.length >> 1]!
  console.log(`${label.padEnd(44)} ${median.toFixed(0).padStart(6)} ns/envelope  (min ${results[0]!.toFixed(0)})${sink < 0 ? '' : ''}`)
}

for (const size of [64, 4096]) {
  const payload = encodeCbor({ data: 'x'.repeat(size) })
  const request = encodeRequest(12345, 'bench', 'echo', 30_000, null, payload)
  const reply = encodeReply(12345, payload)
  const requests = request
  const replies = reply
  const replies16 = Buffer.concat(Array.from({ length: 16 }, () => reply))
  const limits = DEFAULT_CBOR_LIMITS
  time(`${size} B  scanFrame REQUEST`, requests, 1, (f) => scanFrame(f, limits))
  time(`${size} B  parseFrame REQUEST`, requests, 1, (f) => parseFrame(f, limits))
  time(`${size} B  readFrameInChunks REQUEST`, requests, 1, (f) => {
    let last: unknown
    for (const chunk of readFrameInChunks(f, limits)) last = chunk[0]
    return last
  })
  time(`${size} B  parseFrame REPLY`, replies, 1, (f) => parseFrame(f, limits))
  time(`${size} B  parseFrame 16 REPLYs`, replies16, 16, (f) => parseFrame(f, limits))
  time(`${size} B  REQUEST + decode params`, requests, 1, (f) => decodeCbor(payloadOf(parseFrame(f, limits)[0]!), limits))
  time(`${size} B  16 REPLYs + decode results`, replies16, 16, (f) => {
    let last: unknown
    for (const env of parseFrame(f, limits)) last = decodeCbor(payloadOf(env), limits)
    return last
  })
}
