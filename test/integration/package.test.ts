import { expect } from 'chai'
import { execFile } from 'node:child_process'
import { cp, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises'
import { builtinModules, createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
// The project's own compiler, found the way Node finds it, so the path holds in any clone.
const TSC = join(dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin', 'tsc')

interface PackageJson {
  readonly name: string
  readonly version: string
  readonly dependencies: Record<string, string>
  readonly devDependencies: Record<string, string>
}

// A user's first program, in plain JavaScript: one call over loopback.
const CALL_JS = `import { Type } from 'typebox'
import { defineService, RpcClient, RpcServer } from 'zrpc'

const Greeter = defineService('greeter', { hello: { params: Type.Object({ name: Type.String() }), result: Type.String() } })
const server = new RpcServer().implement(Greeter, { hello: ({ name }) => 'hello ' + name })
const [endpoint] = await server.bind('tcp://127.0.0.1:*')
const client = new RpcClient({ connect: endpoint, timeoutMs: 5000 })
try {
  console.log(await client.service(Greeter).hello({ name: 'package' }))
} finally {
  await client.close()
  await server.close()
}
`

// The same from TypeScript, with the types a user reaches for; each @ts-expect-error fails the
// compile if the types were lost (an any would accept the wrong value).
const TYPED_TS = `import { Type } from 'typebox'
import { defineService, RpcClient, RpcError, RpcServer, type CallContext, type ParamsOf, type ResultOf, type ServiceClient } from 'zrpc'
import { ReplyServer } from 'zrpc/patterns/reqrep'

const Calc = defineService('calc', { add: { params: Type.Object({ a: Type.Number(), b: Type.Number() }), result: Type.Number() } })
type Add = typeof Calc.methods.add

export const server = new RpcServer().implement(Calc, { add: ({ a, b }: ParamsOf<Add>, _ctx: CallContext) => a + b })
export async function add(client: RpcClient, a: number, b: number): Promise<ResultOf<Add>> {
  const calc: ServiceClient<typeof Calc> = client.service(Calc)
  // @ts-expect-error b must be a number
  void calc.add({ a, b: 'two' })
  return calc.add({ a, b })
}
export const retryable = (err: unknown): boolean => err instanceof RpcError && err.code === 'UNAVAILABLE'
export type Replier = ReplyServer
// @ts-expect-error a handler must return the result type
new RpcServer().implement(Calc, { add: () => 'three' })
`

const TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    strict: true,
    exactOptionalPropertyTypes: true,
    noUncheckedIndexedAccess: true,
    noEmit: true,
    // Checking @types/node itself would triple the time; the import scan below catches what this hides.
    skipLibCheck: true,
  },
  files: ['typed.ts'],
}

/** Every `from '...'`, `import '...'` and `import('...')` specifier in a JS or declaration file. */
const specifiers = (source: string): string[] => [...source.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)['"]([^'"]+)['"]/g)].map((m) => m[1]!)

const packageName = (specifier: string): string => specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/')

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true })
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name))
}

describe('the packed package, installed into a new project', function () {
  this.timeout(180_000)
  let tmp = ''
  let app = ''
  let packed: string[] = []
  let pkg: PackageJson

  before(async () => {
    pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as PackageJson
    tmp = await mkdtemp(join(tmpdir(), 'zrpc-package-'))
    // Pack a copy without dist/, as a fresh clone or a git-URL install sees it: only the prepare
    // script can produce the dist/ the package needs, and the running suite's dist/ stays untouched.
    const checkout = join(tmp, 'checkout')
    const skip = new Set(['node_modules', 'dist', '.git'])
    await cp(ROOT, checkout, { recursive: true, filter: (src) => !skip.has(relative(ROOT, src).split(/[\\/]/)[0]!) })
    await symlink(join(ROOT, 'node_modules'), join(checkout, 'node_modules'), 'dir')
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', tmp], { cwd: checkout, timeout: 150_000 })
    const [info] = JSON.parse(stdout) as [{ filename: string; files: { path: string }[] }]
    packed = info.files.map((f) => f.path)

    app = join(tmp, 'app')
    await mkdir(app)
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'zrpc-user', private: true, type: 'module' }))
    // What a TypeScript user installs: zrpc, the typebox they write contracts with, Node's types.
    const typebox = `typebox@${pkg.dependencies['typebox']}`
    const nodeTypes = `@types/node@${pkg.devDependencies['@types/node']}`
    await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(tmp, info.filename), typebox, nodeTypes], { cwd: app, timeout: 150_000 })
  })

  after(async () => {
    if (tmp !== '') await rm(tmp, { recursive: true, force: true })
  })

  it('holds the built library, the patterns and the bin, and none of the tests or benchmarks', () => {
    expect(packed).to.include.members(['package.json', 'bin/zrpc.js', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/cli/main.js', 'dist/patterns/reqrep.js', 'dist/patterns/reqrep.d.ts'])
    expect(packed.filter((p) => /^dist\/(test|benchmarks|examples)\//.test(p))).to.deep.equal([])
  })

  it('imports, at run time and in its types, only Node built-ins, itself and its declared dependencies', async () => {
    const root = join(app, 'node_modules', 'zrpc')
    const allowed = new Set([pkg.name, ...Object.keys(pkg.dependencies)])
    const strays: string[] = []
    for (const file of await filesUnder(root)) {
      if (!/\.(js|d\.ts)$/.test(file)) continue
      for (const spec of specifiers(await readFile(file, 'utf8'))) {
        if (spec.startsWith('.') || spec.startsWith('node:') || builtinModules.includes(spec) || allowed.has(packageName(spec))) continue
        strays.push(`${relative(root, file)}: ${spec}`)
      }
    }
    expect(strays).to.deep.equal([])
    // One typebox for the user's contracts and zrpc's validators, or their schemas would not agree.
    expect(await readdir(join(root, 'node_modules')).catch(() => [])).to.not.include('typebox')
  })

  it('serves and makes a typed call from a plain JavaScript ESM program', async () => {
    await writeFile(join(app, 'call.mjs'), CALL_JS)
    const { stdout } = await run(process.execPath, ['call.mjs'], { cwd: app, timeout: 15_000 })
    expect(stdout).to.equal('hello package\n')
  })

  it('type-checks a strict NodeNext TypeScript program against its declarations', async () => {
    await writeFile(join(app, 'typed.ts'), TYPED_TS)
    await writeFile(join(app, 'tsconfig.json'), JSON.stringify(TSCONFIG))
    // tsc prints its errors on stdout; a failed run rejects with them in the message.
    const { stdout } = await run(process.execPath, [TSC, '-p', 'tsconfig.json'], { cwd: app, timeout: 60_000 })
    expect(stdout).to.equal('')
  })

  it('installs the zrpc command: --help prints the usage and --version the package version, both exit 0', async () => {
    const bin = join(app, 'node_modules', '.bin', 'zrpc')
    const help = await run(bin, ['--help'], { cwd: app, timeout: 15_000 })
    expect(help.stdout).to.match(/^usage: zrpc <command>/)
    expect(help.stderr).to.equal('')
    const version = await run(bin, ['--version'], { cwd: app, timeout: 15_000 })
    expect(version.stdout).to.equal(`${pkg.version}\n`)
  })
})
