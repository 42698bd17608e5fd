#!/usr/bin/env node
// The installed `zrpc` command: runs the compiled CLI. A packed or published zrpc ships dist/; a
// git checkout builds it on `npm install` (the prepare script) or with `npm run build`.
import { existsSync } from 'node:fs'

const entry = new URL('../dist/lib/cli/main.js', import.meta.url)
// Without this check a checkout that was never built fails with a module-resolution stack trace.
if (!existsSync(entry)) {
  process.stderr.write('zrpc: dist/ is missing, this checkout was never built: run `npm install` or `npm run build`\n')
  process.exit(1)
}
const { main } = await import(entry.href)

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err) => {
    process.stderr.write(`zrpc: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 1
  },
)
