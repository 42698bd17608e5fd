/**
 * A grouped bar chart as a hand-written SVG string: no dependency, readable in any browser or in a
 * GitHub Markdown view. One group per x label, one bar per series, the value printed above each bar.
 */
import { formatRate } from './format.js'

export interface ChartGroup {
  readonly label: string
  /** Values in series order; NaN or missing draws no bar. */
  readonly values: readonly number[]
}

export interface BarChart {
  readonly title: string
  readonly subtitle: string
  readonly yLabel: string
  readonly series: readonly string[]
  readonly groups: readonly ChartGroup[]
}

const COLORS = ['#6b7280', '#f59e0b', '#2563eb', '#059669', '#db2777', '#7c3aed']

const escape = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')

/** A "nice" axis maximum: 1, 2 or 5 times a power of ten, at or above `max`. */
function niceMax(max: number): number {
  if (!(max > 0)) return 1
  const power = 10 ** Math.floor(Math.log10(max))
  for (const step of [1, 2, 5, 10]) if (step * power >= max) return step * power
  return 10 * power
}

export function barChartSvg(chart: BarChart): string {
  const barWidth = 56
  const barGap = 10
  const groupGap = 60
  const left = 80
  const top = 70
  const plotHeight = 300
  const legendHeight = 24 * chart.series.length + 10
  const groupWidth = chart.series.length * (barWidth + barGap) - barGap
  const width = left + chart.groups.length * (groupWidth + groupGap) + 20
  const height = top + plotHeight + 50 + legendHeight
  const maxValue = niceMax(Math.max(0, ...chart.groups.flatMap((g) => g.values.filter(Number.isFinite))))
  const y = (v: number): number => Math.round((top + plotHeight - (v / maxValue) * plotHeight) * 10) / 10

  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`)
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`)
  out.push(`<text x="${left}" y="24" font-size="16" font-weight="bold">${escape(chart.title)}</text>`)
  out.push(`<text x="${left}" y="44" fill="#555">${escape(chart.subtitle)}</text>`)
  for (let i = 0; i <= 5; i++) {
    const v = (maxValue * i) / 5
    out.push(`<line x1="${left}" x2="${width - 20}" y1="${y(v)}" y2="${y(v)}" stroke="#e5e7eb"/>`)
    out.push(`<text x="${left - 8}" y="${y(v) + 4}" text-anchor="end" fill="#555">${formatRate(v)}</text>`)
  }
  out.push(`<text transform="translate(18 ${top + plotHeight / 2}) rotate(-90)" text-anchor="middle" fill="#555">${escape(chart.yLabel)}</text>`)
  chart.groups.forEach((group, g) => {
    const x0 = left + groupGap / 2 + g * (groupWidth + groupGap)
    group.values.forEach((value, s) => {
      if (!Number.isFinite(value)) return
      const x = x0 + s * (barWidth + barGap)
      const color = COLORS[s % COLORS.length]!
      out.push(`<rect x="${x}" y="${y(value)}" width="${barWidth}" height="${Math.round((top + plotHeight - y(value)) * 10) / 10}" fill="${color}"/>`)
      out.push(`<text x="${x + barWidth / 2}" y="${y(value) - 5}" text-anchor="middle">${formatRate(value)}</text>`)
    })
    out.push(`<text x="${x0 + groupWidth / 2}" y="${top + plotHeight + 20}" text-anchor="middle" font-weight="bold">${escape(group.label)}</text>`)
  })
  out.push(`<line x1="${left}" x2="${width - 20}" y1="${top + plotHeight}" y2="${top + plotHeight}" stroke="#111"/>`)
  chart.series.forEach((name, s) => {
    const ly = top + plotHeight + 44 + s * 24
    out.push(`<rect x="${left}" y="${ly}" width="14" height="14" fill="${COLORS[s % COLORS.length]!}"/>`)
    out.push(`<text x="${left + 22}" y="${ly + 12}">${escape(name)}</text>`)
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}
