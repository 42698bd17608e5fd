/** What the numbers were measured on: printed by the runner and stored with every result file. */
import { readFileSync } from 'node:fs'
import os from 'node:os'
import { version as libzmqVersion } from 'zeromq'

export interface MachineInfo {
  readonly date: string
  readonly cpuModel: string
  readonly cores: number
  readonly memoryGiB: number
  readonly os: string
  readonly node: string
  readonly versions: Record<string, string>
}

// Compiled code runs from dist/benchmarks/harness/.
const ROOT = new URL('../../../', import.meta.url)

function packageVersion(name: string): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL(`node_modules/${name}/package.json`, ROOT), 'utf8')) as { version?: string }
    return pkg.version ?? 'unknown'
  } catch {
    return 'not installed'
  }
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus()
  return {
    date: new Date().toISOString(),
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    versions: {
      zeromq: packageVersion('zeromq'),
      libzmq: libzmqVersion,
      'cbor-x': packageVersion('cbor-x'),
      typebox: packageVersion('typebox'),
      '@grpc/grpc-js': packageVersion('@grpc/grpc-js'),
      '@grpc/proto-loader': packageVersion('@grpc/proto-loader'),
    },
  }
}

/** One paragraph for the console and for result files. */
export function describeMachine(m: MachineInfo): string {
  const versions = Object.entries(m.versions)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')
  return `${m.date} | ${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB | ${m.os} | node ${m.node} | ${versions}`
}
