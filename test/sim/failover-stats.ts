export interface Distribution {
  readonly count: number
  readonly min: number
  readonly median: number
  readonly p90: number
  readonly max: number
}

export function distribution(samples: readonly number[]): Distribution | null {
  if (samples.length === 0) return null
  const s = [...samples].sort((a, b) => a - b)
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN
  return {
    count: s.length,
    min: s[0] ?? Number.NaN,
    median: at(0.5),
    p90: at(0.9),
    max: s[s.length - 1] ?? Number.NaN,
  }
}

export function formatDistribution(label: string, d: Distribution | null): string {
  if (d === null) return `${label}: no samples`
  const f = (x: number) => `${x.toFixed(0)} ms`
  return `${label}: n=${d.count} min ${f(d.min)} median ${f(d.median)} p90 ${f(d.p90)} max ${f(d.max)}`
}
