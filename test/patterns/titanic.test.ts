import { expect } from 'chai'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MajordomoBroker, MajordomoClient, MajordomoWorker } from '../../patterns/majordomo.js'
import { Status, Titanic, main, titanicClose, titanicReply, titanicRequest } from '../../patterns/titanic.js'
import type { TitanicAnswer } from '../../patterns/titanic.js'

/** Heartbeats slow enough that a loaded machine cannot expire a worker mid-test; dispatch passes fast. */
const HB = 1000
const RETRY_MS = 50
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
const str = (answer: TitanicAnswer | null) => (answer ? [answer.status, ...answer.body.map(String)] : null)

async function until(check: () => boolean, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await sleep(5)
  }
}

describe('patterns/titanic', function () {
  this.timeout(8000)
  let cleanup: (() => unknown)[] = []
  afterEach(async () => {
    for (const fn of cleanup.reverse()) await fn()
    cleanup = []
  })

  /** A temp directory, a broker and a client; removed and closed after the test. */
  async function setup() {
    const dir = await mkdtemp(join(tmpdir(), 'zrpc-titanic-'))
    cleanup.push(() => rm(dir, { recursive: true, force: true }))
    const broker = new MajordomoBroker({ heartbeatMs: HB })
    const endpoint = await broker.bind('tcp://127.0.0.1:*')
    cleanup.push(() => broker.close())
    const client = new MajordomoClient(endpoint, { timeoutMs: 3000, retries: 1 })
    cleanup.push(() => client.close())
    return { dir, broker, endpoint, client }
  }

  async function startTitanic(dir: string, endpoint: string) {
    const titanic = new Titanic(dir, { heartbeatMs: HB, retryMs: RETRY_MS })
    await titanic.start(endpoint)
    cleanup.push(() => titanic.close())
    return titanic
  }

  /** A worker that serves until closed; `handler` returns the reply body. */
  function startWorker(endpoint: string, service: string, handler: (body: Buffer[]) => unknown) {
    const worker = new MajordomoWorker(endpoint, service, { heartbeatMs: HB })
    const served = (async () => {
      for await (const req of worker) await req.reply((await handler(req.body)) as Buffer[])
    })()
    cleanup.push(async () => {
      await worker.close()
      await served
    })
    return worker
  }

  async function uuidOf(answer: Promise<TitanicAnswer | null>): Promise<string> {
    const got = await answer
    expect(got?.status).to.equal(Status.Ok)
    return String(got?.body[0])
  }

  /** Polls titanic.reply while it says 300, as ticlient does. */
  async function replyOf(client: MajordomoClient, uuid: string, timeoutMs = 4000): Promise<TitanicAnswer | null> {
    const end = Date.now() + timeoutMs
    let answer = await titanicReply(client, uuid)
    while (answer?.status === Status.Pending && Date.now() < end) {
      await sleep(20)
      answer = await titanicReply(client, uuid)
    }
    return answer
  }

  describe('main() with small numbers', () => {
    it('stores requests while no worker exists (300), fetches every echo (200), and closes them (400, no files left)', async () => {
      const summary = await main({ requests: 2, heartbeatMs: HB, retryMs: RETRY_MS })
      expect(summary).to.deep.equal({ requests: 2, before: ['300', '300'], replies: 2, after: ['400', '400'], filesLeft: 0 })
    })
  })

  describe('the three services', () => {
    it('titanic.request stores the request on disk and answers 200 with a 32-hex UUID', async () => {
      const { dir, endpoint, client } = await setup()
      const titanic = await startTitanic(dir, endpoint)
      const answer = await titanicRequest(client, 'echo', 'hello')
      expect(answer?.status).to.equal('200')
      expect(answer?.body).to.have.length(1)
      const uuid = String(answer?.body[0])
      expect(uuid).to.match(/^[0-9A-F]{32}$/)
      expect(await readdir(dir)).to.deep.equal([`${uuid}.req`])
      expect(titanic.stats()).to.include({ stored: 1, pending: 1, replied: 0 })
      const other = await uuidOf(titanicRequest(client, 'echo', 'again'))
      expect(other).to.not.equal(uuid)
    })

    it('titanic.reply says 300 while the service has no worker, then 200 with the reply once a worker joins, every time it is asked', async () => {
      const { dir, endpoint, client } = await setup()
      const titanic = await startTitanic(dir, endpoint)
      const frames = [Buffer.from('a'), Buffer.alloc(0), Buffer.from([0, 255, 1])]
      const uuid = await uuidOf(titanicRequest(client, 'echo', frames))
      await sleep(RETRY_MS * 4) // several dispatch passes, each told by mmi.service that echo is missing
      expect(str(await titanicReply(client, uuid))).to.deep.equal(['300'])
      expect(titanic.stats()).to.include({ pending: 1, replied: 0 })

      startWorker(endpoint, 'echo', (body) => [Buffer.from('re'), ...body])
      const answer = await replyOf(client, uuid)
      expect(answer?.status).to.equal('200')
      expect(answer?.body).to.deep.equal([Buffer.from('re'), ...frames])
      // Idempotent, and the UUID is not case sensitive (the RFC allows either case).
      expect(str(await titanicReply(client, uuid))).to.deep.equal(str(answer))
      expect(str(await titanicReply(client, uuid.toLowerCase()))).to.deep.equal(str(answer))
      expect(titanic.stats()).to.include({ pending: 0, replied: 1 })
      expect((await readdir(dir)).sort()).to.deep.equal([`${uuid}.rep`, `${uuid}.req`])
    })

    it('titanic.reply says 400 for an unknown UUID, and for anything that is not one (no path reaches the disk)', async () => {
      const { dir, endpoint, client } = await setup()
      await startTitanic(dir, endpoint)
      expect(str(await titanicReply(client, '0123456789ABCDEF0123456789ABCDEF'))).to.deep.equal(['400'])
      expect(str(await titanicReply(client, '../../../../etc/passwd'))).to.deep.equal(['400'])
      expect(str(await titanicReply(client, 'not-a-uuid'))).to.deep.equal(['400'])
    })

    it('titanic.close deletes request and reply files; the UUID is unknown (400) afterwards; closing again or an unknown UUID is 200', async () => {
      const { dir, endpoint, client } = await setup()
      await startTitanic(dir, endpoint)
      startWorker(endpoint, 'echo', (body) => body)
      const uuid = await uuidOf(titanicRequest(client, 'echo', 'bye'))
      expect(str(await replyOf(client, uuid))).to.deep.equal(['200', 'bye'])
      const kept = await uuidOf(titanicRequest(client, 'nobody', 'stays'))
      expect(str(await titanicClose(client, uuid))).to.deep.equal(['200'])
      expect(str(await titanicReply(client, uuid))).to.deep.equal(['400'])
      expect(await readdir(dir)).to.deep.equal([`${kept}.req`])
      expect(str(await titanicClose(client, uuid))).to.deep.equal(['200'])
      expect(str(await titanicClose(client, '0123456789ABCDEF0123456789ABCDEF'))).to.deep.equal(['200'])
    })

    it('closing a request while its service runs throws the late reply away (no file comes back)', async () => {
      const { dir, endpoint, client } = await setup()
      const titanic = await startTitanic(dir, endpoint)
      let started = false
      startWorker(endpoint, 'slow', async (body) => {
        started = true
        await sleep(200)
        return body
      })
      const uuid = await uuidOf(titanicRequest(client, 'slow', 'job'))
      await until(() => started)
      expect(str(await titanicClose(client, uuid))).to.deep.equal(['200'])
      await until(() => titanic.stats().discarded === 1)
      expect(titanic.stats()).to.include({ pending: 0, replied: 0 })
      expect(await readdir(dir)).to.deep.equal([])
      expect(str(await titanicReply(client, uuid))).to.deep.equal(['400'])
    })

    it('answers 500 to a malformed body', async () => {
      const { dir, endpoint, client } = await setup()
      const titanic = await startTitanic(dir, endpoint)
      const ask = async (service: string, body: string[]) => (await client.request(service, body))?.map(String)
      expect(await ask('titanic.request', [])).to.deep.equal(['500'])
      expect(await ask('titanic.request', ['echo'])).to.deep.equal(['500']) // the RFC: service name and a body, 2 frames or more
      expect(await ask('titanic.request', ['', 'x'])).to.deep.equal(['500'])
      expect(await ask('titanic.reply', [])).to.deep.equal(['500'])
      expect(await ask('titanic.reply', ['0123456789ABCDEF0123456789ABCDEF', 'extra'])).to.deep.equal(['500'])
      expect(await ask('titanic.close', [])).to.deep.equal(['500'])
      expect(titanic.stats().stored).to.equal(0)
      expect(await readdir(dir)).to.deep.equal([])
    })
  })

  describe('restarts', () => {
    it('a request stored by one Titanic is sent by the next one on the same directory', async () => {
      const { dir, endpoint, client } = await setup()
      const first = await startTitanic(dir, endpoint)
      const uuid = await uuidOf(titanicRequest(client, 'later', 'survives'))
      await sleep(RETRY_MS * 2)
      await first.close() // before any worker for 'later' exists
      expect(await readdir(dir)).to.deep.equal([`${uuid}.req`])

      const second = await startTitanic(dir, endpoint)
      expect(second.stats().pending).to.equal(1)
      expect(str(await titanicReply(client, uuid))).to.deep.equal(['300'])
      startWorker(endpoint, 'later', (body) => ['done', ...body.map(String)])
      expect(str(await replyOf(client, uuid))).to.deep.equal(['200', 'done', 'survives'])
      expect(second.stats()).to.include({ pending: 0, replied: 1 })

      // The stored reply outlives a restart too, and is not sent again.
      await second.close()
      const third = await startTitanic(dir, endpoint)
      expect(third.stats().pending).to.equal(0)
      expect(str(await titanicReply(client, uuid))).to.deep.equal(['200', 'done', 'survives'])
    })

    it('on start, removes what a crash left half written, resumes the oldest request first, and leaves other files alone', async () => {
      const { dir, endpoint, client } = await setup()
      const first = await startTitanic(dir, endpoint)
      const older = await uuidOf(titanicRequest(client, 'order', 'first'))
      await sleep(20) // distinct modification times
      const newer = await uuidOf(titanicRequest(client, 'order', 'second'))
      await first.close()
      const orphan = 'ABCDEF0123456789ABCDEF0123456789'
      await writeFile(join(dir, `${orphan}.req.tmp`), 'cut short')
      await writeFile(join(dir, `${orphan}.rep`), 'request closed, reply delete cut short')
      await writeFile(join(dir, 'notes.txt'), 'not ours')

      await startTitanic(dir, endpoint)
      expect((await readdir(dir)).sort()).to.deep.equal([`${newer}.req`, `${older}.req`, 'notes.txt'].sort())
      const seen: string[] = []
      startWorker(endpoint, 'order', (body) => (seen.push(String(body[0])), body))
      expect(str(await replyOf(client, newer))).to.deep.equal(['200', 'second'])
      expect(str(await replyOf(client, older))).to.deep.equal(['200', 'first'])
      expect(seen).to.deep.equal(['first', 'second'])
    })
  })
})
