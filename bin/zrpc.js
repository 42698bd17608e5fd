#!/usr/bin/env node
// The installed `zrpc` command: runs the compiled CLI (npm run build makes dist/).
import { main } from '../dist/lib/cli/main.js'

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err) => {
    process.stderr.write(`zrpc: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 1
  },
)
