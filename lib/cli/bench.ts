/**
 * `zrpc bench [case] [flags]`: runs the bench runner of a checkout of the repository
 * (dist/benchmarks/run.js, built by `npm run build`), passing every argument through.
 *
 * The benchmarks are not in the published package (they need gRPC and Moleculer as peers to
 * measure against), so an installed zrpc says where to find them instead of failing obscurely.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { constants } from 'node:os'
import { fileURLToPath } from 'node:url'

export const BENCH_USAGE = `usage: zrpc bench [case] [flags]

Runs the benchmarks of a checkout of the zrpc repository (after npm run build) and prints the
machine, a table of calls/s, p50 and p99 with each system's ratio to raw zeromq.js, and the aims
met or missed. Cases: rpc, broker, pubsub, soak, balance, stream, queue; none runs them all (about 17 minutes).
Results go to benchmarks/results/ (JSON, Markdown, an SVG chart) and benchmarks/RESULTS.md.

  -h, --help          show this text
  --quick             short phases, one run, writes nothing (a smoke run)
  --only=a,b          rpc systems: raw, raw-coalesced, zrpc, grpc, moleculer (raw always runs)
  --runs=N            repetitions, medians shown (default 3)
  --verbose           one line per phase, also when not in a terminal
  --report-only       re-render the reports from benchmarks/results/rpc.json

Every other flag goes to the case unchanged; see docs/benchmarks.md.`

/** Where the runner is when zrpc runs from a built checkout: dist/lib/cli/ -> dist/benchmarks/. */
const DIST = new URL('../../', import.meta.url)

/**
 * The bench runner's path under `dist` (the compiled tree holding lib/ and benchmarks/), or
 * undefined when this is an installed package, which ships without benchmarks.
 * @example benchRunnerPath() // '/home/me/zrpc/dist/benchmarks/run.js' in a built checkout
 */
export function benchRunnerPath(dist: URL = DIST): string | undefined {
  const runner = fileURLToPath(new URL('benchmarks/run.js', dist))
  return existsSync(runner) ? runner : undefined
}

const NO_BENCH = `zrpc bench: the benchmarks ship with the source repository, not with the package.
To run them, in a clone of the zrpc repository:
  npm install && npm run bench        (builds, then runs every case)
  npx zrpc bench rpc --quick          (after npm run build: one case, a smoke run)`

/**
 * Runs `zrpc bench` with `argv` (the arguments after `bench`) and returns the exit code: the
 * runner's own, 0 for usage, 1 when there is no runner next to this package.
 * @example process.exitCode = await runBench(['rpc', '--quick'])
 */
export async function runBench(argv: readonly string[], dist: URL = DIST): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${BENCH_USAGE}\n`)
    return 0
  }
  const runner = benchRunnerPath(dist)
  if (runner === undefined) {
    process.stderr.write(`${NO_BENCH}\n`)
    return 1
  }
  // Inherited stdio: the runner sees the same terminal (progress line) or pipe (quiet) as we do.
  const child = spawn(process.execPath, [runner, ...argv], { stdio: 'inherit' })
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    // Killed by a signal: the shell's convention, 128 + its number.
    child.once('exit', (code, signal) => resolve(code ?? 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0))))
  })
}
