import { expect } from 'chai'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const BIN = fileURLToPath(new URL('../../../bin/zrpc.js', import.meta.url))
const ROOT = new URL('../../../', import.meta.url)

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `zrpc ...args` as a user would, from the bin script, and keeps both streams apart. */
function zrpc(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, ...args], { timeout: 8000 }, (_err, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr }))
  })
}

describe('the zrpc command line, run from bin/zrpc.js', function () {
  this.timeout(10_000)

  describe('asked for help', () => {
    for (const args of [['--help'], ['-h'], ['help']]) {
      it(`\`zrpc ${args.join(' ')}\` prints the usage on stdout and exits 0`, async () => {
        const { code, stdout, stderr } = await zrpc(...args)
        expect({ code, stderr }).to.deep.equal({ code: 0, stderr: '' })
        expect(stdout).to.match(/^usage: zrpc <command>/).and.include('demo').and.include('broker').and.include('proxy')
      })
    }

    const commands = [
      { command: 'demo', usage: /^usage: zrpc demo\n/ },
      { command: 'broker', usage: /^usage: zrpc broker \[--bind endpoint\]/ },
      { command: 'proxy', usage: /^usage: zrpc proxy --xsub <endpoint> --xpub <endpoint>\n/ },
      { command: 'bench', usage: /^usage: zrpc bench \[case\] \[flags\]\n/ },
      { command: 'keygen', usage: /^usage: zrpc keygen \[--out path\]\n/ },
    ]
    for (const { command, usage } of commands) {
      for (const args of [[command, '--help'], [command, '-h'], ['help', command]]) {
        it(`\`zrpc ${args.join(' ')}\` prints the ${command} usage on stdout and exits 0, starting nothing`, async () => {
          const { code, stdout, stderr } = await zrpc(...args)
          expect({ code, stderr }).to.deep.equal({ code: 0, stderr: '' })
          expect(stdout).to.match(usage).and.include('--help')
        })
      }
    }
  })

  describe('asked for the version', () => {
    for (const flag of ['--version', '-v']) {
      it(`\`zrpc ${flag}\` prints the version in package.json and exits 0`, async () => {
        const { version } = JSON.parse(await readFile(new URL('package.json', ROOT), 'utf8')) as { version: string }
        expect(await zrpc(flag)).to.deep.equal({ code: 0, stdout: `${version}\n`, stderr: '' })
      })
    }
  })

  describe('given no command', () => {
    it('prints the usage on stderr, nothing on stdout, and exits 1', async () => {
      const { code, stdout, stderr } = await zrpc()
      expect({ code, stdout }).to.deep.equal({ code: 1, stdout: '' })
      expect(stderr).to.match(/^usage: zrpc <command>/)
    })
  })

  describe('given a usage error', () => {
    const cases = [
      { args: ['frobnicate'], says: 'unknown command "frobnicate"' },
      { args: ['--frobnicate'], says: 'unknown option "--frobnicate"' },
      { args: ['help', 'frobnicate'], says: 'no help for "frobnicate"' },
      { args: ['help', 'toString'], says: 'no help for "toString"' },
      { args: ['demo', 'now'], says: 'zrpc demo: unexpected argument "now"' },
      { args: ['broker', '--heartbeat', 'soon'], says: 'zrpc broker: --heartbeat must be a positive integer, got "soon"' },
      { args: ['broker', '--nope'], says: "zrpc broker: Unknown option '--nope'" },
      { args: ['broker', 'now'], says: "zrpc broker: Unexpected argument 'now'" },
      { args: ['proxy', '--xsub'], says: "zrpc proxy: Option '--xsub <value>' argument missing" },
      { args: ['proxy', '--xsub', 'tcp://127.0.0.1:*'], says: 'zrpc proxy: both --xsub and --xpub are required' },
      { args: ['proxy', '--xsub', 'a', '--bogus', 'b'], says: "zrpc proxy: Unknown option '--bogus'" },
    ]
    for (const { args, says } of cases) {
      it(`\`zrpc ${args.join(' ')}\` complains on stderr, nothing on stdout, and exits 2`, async () => {
        const { code, stdout, stderr } = await zrpc(...args)
        expect({ code, stdout }).to.deep.equal({ code: 2, stdout: '' })
        expect(stderr).to.include(says)
      })
    }
  })

  describe('unable to bind', () => {
    it('`zrpc proxy` with an endpoint it cannot bind says so on stderr and exits 1', async () => {
      const { code, stdout, stderr } = await zrpc('proxy', '--xsub', 'tcp://no-such-interface', '--xpub', 'tcp://127.0.0.1:*')
      expect({ code, stdout }).to.deep.equal({ code: 1, stdout: '' })
      expect(stderr).to.match(/^zrpc proxy: cannot bind: /)
    })

    it('`zrpc broker` with an endpoint it cannot bind says so on stderr and exits 1', async () => {
      const { code, stdout, stderr } = await zrpc('broker', '--bind', 'tcp://no-such-interface')
      expect({ code, stdout }).to.deep.equal({ code: 1, stdout: '' })
      expect(stderr).to.match(/^zrpc broker: cannot bind: /)
    })
  })

  describe('keygen', () => {
    it('`zrpc keygen --out p` writes p.key (owner-only) and p.pub, prints the public key, and never overwrites a key', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'zrpc-keygen-'))
      try {
        const out = join(dir, 'server')
        const { code, stdout, stderr } = await zrpc('keygen', '--out', out)
        expect({ code, stderr }).to.deep.equal({ code: 0, stderr: '' })
        const publicKey = stdout.trim()
        expect(publicKey).to.match(/^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/)
        expect((await readFile(`${out}.pub`, 'utf8')).trim()).to.equal(publicKey)
        const secretKey = (await readFile(`${out}.key`, 'utf8')).trim()
        expect(secretKey).to.have.length(40)
        expect((await stat(`${out}.key`)).mode & 0o777).to.equal(0o600)
        // The pair works: a server with it serves a client that knows the public key.
        const { RpcServer, RpcClient, curveKeyPair } = await import('../../lib/index.js')
        const { Calc, calcHandlers } = await import('../helpers/calc.js')
        const server = new RpcServer({ curve: { publicKey, secretKey } }).implement(Calc, calcHandlers())
        const [endpoint] = await server.bind('tcp://127.0.0.1:*')
        const client = new RpcClient({ connect: endpoint!, curve: { serverKey: publicKey, ...curveKeyPair() } })
        try {
          expect(await client.service(Calc).add({ a: 1, b: 1 })).to.equal(2)
        } finally {
          await client.close()
          await server.close()
        }
        const again = await zrpc('keygen', '--out', out)
        expect(again.code).to.equal(1)
        expect(again.stderr).to.match(/^zrpc keygen: .*EEXIST/)
        expect((await readFile(`${out}.key`, 'utf8')).trim()).to.equal(secretKey)
      } finally {
        await rm(dir, { recursive: true, force: true })
      }
    })
  })
})
