/** Number formatting shared by tables and charts. */

/** 681234 -> "681k", 5512 -> "5.5k", 950 -> "950". */
export function formatRate(perSec: number): string {
  if (!Number.isFinite(perSec)) return '-'
  if (perSec >= 100_000) return `${Math.round(perSec / 1000)}k`
  if (perSec >= 1000) return `${(perSec / 1000).toFixed(1)}k`
  return `${Math.round(perSec)}`
}

/** Microseconds, switching to ms from 10 ms on, as in the reference anchors. */
export function formatMicros(us: number): string {
  if (!Number.isFinite(us)) return '-'
  if (us >= 10_000) return `${(us / 1000).toFixed(1)}ms`
  return `${Math.round(us)}`
}

export function formatRatio(r: number | undefined): string {
  return r === undefined || !Number.isFinite(r) ? '' : `${r.toFixed(2)}x`
}

/** Median of a non-empty list (mean of the middle two for even lengths). */
export function median(values: readonly number[]): number {
  const finite = values.filter(Number.isFinite).sort((a, b) => a - b)
  if (finite.length === 0) return Number.NaN
  const mid = finite.length >> 1
  return finite.length % 2 === 1 ? finite[mid]! : (finite[mid - 1]! + finite[mid]!) / 2
}

export function formatBytes(n: number): string {
  return n >= 1024 && n % 1024 === 0 ? `${n / 1024} KiB` : `${n} B`
}

/** A latency with its unit, for log lines: "365 µs", "20.9ms". */
export function formatLatency(us: number): string {
  const s = formatMicros(us)
  return s.endsWith('ms') || s === '-' ? s : `${s} µs`
}
