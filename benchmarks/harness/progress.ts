/**
 * What a bench prints while it runs. In a terminal: one status line rewritten in place (with \r)
 * and the `I:` log lines above it. In a pipe: nothing but what the caller prints with
 * {@link Progress.result} (the final table and the file paths), unless `verbose` asks for the log
 * lines too. A status line never goes to a pipe: a log file full of \r is no use.
 */
export interface ProgressOutput {
  readonly isTTY?: boolean
  /** Terminal width: a status line longer than this would wrap, and \r would rewrite only its end. */
  readonly columns?: number
  write(text: string): unknown
}

export class Progress {
  readonly tty: boolean
  private status = ''

  constructor(
    private readonly out: ProgressOutput = process.stdout,
    private readonly verbose = false,
  ) {
    this.tty = out.isTTY === true
  }

  /** An `I:` line: shown in a terminal or with --verbose. */
  log(line: string): void {
    if (!this.tty && !this.verbose) return
    this.clear()
    this.out.write(`${line}\n`)
    this.redraw()
  }

  /** Replaces the status line (terminal only). */
  update(status: string): void {
    if (!this.tty) return
    this.clear()
    this.status = status
    this.redraw()
  }

  /** Output that always appears: results and the paths of the files written. */
  result(text: string): void {
    this.clear()
    this.out.write(`${text}\n`)
    this.redraw()
  }

  /** Removes the status line for good. */
  done(): void {
    this.clear()
    this.status = ''
  }

  private clear(): void {
    if (this.tty && this.status !== '') this.out.write('\r\x1b[K')
  }

  private redraw(): void {
    if (this.tty && this.status !== '') this.out.write(`\r${this.status.slice(0, Math.max(10, (this.out.columns ?? 80) - 1))}`)
  }
}

/** Whether `--verbose` (or BENCH_VERBOSE=1) asks for the log lines in a pipe too. */
export function verboseFlag(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): boolean {
  if (argv.includes('--verbose')) return true
  const v = env.BENCH_VERBOSE
  return v !== undefined && v !== '' && v !== '0' && v !== 'false'
}
