/**
 * Helpers for the hostile-peer suites: measure what an attack costs (resident memory) and whether
 * an honest client keeps being served while it runs.
 */

/** Resident set size of this process, in MB. */
export function rssMb(): number {
  return process.memoryUsage.rss() / (1024 * 1024)
}

/** Collects garbage when the test runs with --expose-gc (npm run soak does), so RSS readings settle. */
export function collect(): void {
  ;(globalThis as { gc?: () => void }).gc?.()
}

/** What an honest client saw while an attack ran. */
export interface ProbeResult {
  calls: number
  failures: string[]
  /** Slowest call, in ms. */
  worstMs: number
}

/**
 * Calls `call` every `everyMs` until `stop` resolves, and records how each went. Each call should
 * carry its own deadline; a failure is recorded with its code.
 */
export async function probeWhile(call: () => Promise<unknown>, stop: Promise<unknown>, everyMs = 20): Promise<ProbeResult> {
  const result: ProbeResult = { calls: 0, failures: [], worstMs: 0 }
  let done = false
  void stop.finally(() => (done = true))
  while (!done) {
    const started = performance.now()
    try {
      await call()
    } catch (err) {
      result.failures.push((err as { code?: string }).code ?? String(err))
    }
    result.calls++
    result.worstMs = Math.max(result.worstMs, performance.now() - started)
    await new Promise((resolve) => setTimeout(resolve, everyMs))
  }
  return result
}

/** One line for the test log: what was attacked, what it cost, what the honest client saw. */
export function report(what: string, fields: Record<string, number | string>): void {
  const parts = Object.entries(fields).map(([k, v]) => `${k}=${typeof v === 'number' ? Math.round(v * 10) / 10 : v}`)
  console.log(`      [hostile] ${what}: ${parts.join(' ')}`)
}
