import { expect } from 'chai'
import { encodeReply, encodeRequest, parseFrame, replySize, requestSize, writeReply, writeRequest } from '../../lib/codec/envelope.js'

describe('REQUEST and REPLY written into a frame buffer the sender owns', () => {
  it('writes the bytes encodeRequest and encodeReply return, back to back, and returns where each ends', () => {
    const ids = [0, 23, 24, 255, 256, 65535, 65536, 2 ** 32, 2 ** 53 - 1]
    for (const id of ids) {
      for (const [service, method] of [['bench', 'echo'], ['é✓', 'x'.repeat(40)]] as const) {
        const params = Buffer.alloc(id % 300, 5)
        const expected = Buffer.concat([encodeRequest(id, service, method, id, null, params), encodeReply(id, params)])
        const size = requestSize(id, Buffer.byteLength(service), Buffer.byteLength(method), id, params.length) + replySize(id, params.length)
        expect(size, `size ${id}`).to.equal(expected.length)
        const frame = Buffer.alloc(size + 2, 0xee)
        let pos = writeRequest(frame, 1, id, service, Buffer.byteLength(service), method, Buffer.byteLength(method), id, params)
        pos = writeReply(frame, pos, id, params)
        expect(pos, `end ${id}`).to.equal(size + 1)
        expect(frame.subarray(1, pos).equals(expected), `bytes ${id} ${service}`).to.equal(true)
        expect(frame[0]).to.equal(0xee)
        expect(frame[pos]).to.equal(0xee)
        expect(parseFrame(frame.subarray(1, pos)).map((env) => env.kind)).to.deep.equal([0, 1])
      }
    }
  })
})
