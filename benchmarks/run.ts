/**
 * The bench runner: prints the machine, then runs one case or all of them.
 *
 *   npm run bench                               # every case, full length
 *   node dist/benchmarks/run.js rpc --quick     # one case, short phases (a smoke run)
 *   node dist/benchmarks/run.js rpc --only=zrpc --runs=1
 *   node dist/benchmarks/run.js soak --calls=500000
 *
 * Flags after the case name go to the case (see the header of each <case>.bench.ts). In a terminal
 * the `I:` lines show what runs; in a pipe they appear only with --verbose (or BENCH_VERBOSE=1).
 */
import { describeMachine, machineInfo, type MachineInfo } from './harness/machine.js'
import { Progress, verboseFlag } from './harness/progress.js'

type BenchCase = (argv: readonly string[], machine: MachineInfo) => Promise<unknown>

const CASES: Record<string, () => Promise<BenchCase>> = {
  rpc: async () => (await import('./rpc.bench.js')).main,
  broker: async () => {
    const { main } = await import('./broker.bench.js')
    // A full run keeps its figures in benchmarks/results/broker.md, as rpc keeps its own.
    return (argv) => main(argv.includes('--quick') ? argv : [...argv, '--write'])
  },
  pubsub: async () => {
    const { main } = await import('./pubsub.bench.js')
    return () => main()
  },
  soak: async () => (await import('./soak.bench.js')).main,
  balance: async () => {
    const { main } = await import('./balance.bench.js')
    return (argv) => main(argv.includes('--quick') ? argv : [...argv, '--write'])
  },
  stream: async () => {
    const { main } = await import('./stream.bench.js')
    return (argv, machine) => main(argv.includes('--quick') ? argv : [...argv, '--write'], undefined, machine)
  },
  queue: async () => {
    const { main } = await import('./queue.bench.js')
    return (argv, machine) => main(argv.includes('--quick') ? argv : [...argv, '--write'], undefined, machine)
  },
}

async function run(): Promise<void> {
  const args = process.argv.slice(2)
  const named = args[0] !== undefined && !args[0].startsWith('--') ? args[0] : undefined
  const flags = named === undefined ? args : args.slice(1)
  if (named !== undefined && !(named in CASES)) {
    throw new Error(`unknown bench case ${JSON.stringify(named)}; known: ${Object.keys(CASES).join(', ')}`)
  }
  const progress = new Progress(process.stdout, verboseFlag(flags))
  const machine = machineInfo()
  progress.log(`I: machine: ${describeMachine(machine)}`)
  for (const name of named === undefined ? Object.keys(CASES) : [named]) {
    progress.log(`I: case ${name}`)
    const bench = await CASES[name]!()
    await bench(flags, machine)
  }
}

run().then(
  () => {
    // Sockets are closed and children stopped; if a handle still lingers, do not wait for it forever.
    setTimeout(() => {
      console.error('W: a handle kept the process alive after the run; exiting')
      process.exit(0)
    }, 5000).unref()
  },
  (err: unknown) => {
    console.error(`E: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
    process.exit(1)
  },
)
