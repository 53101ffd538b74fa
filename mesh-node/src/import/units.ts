/** Value syntaxes of haproxy.cfg, keepalived.conf and Patroni's query strings. Pure; null = unreadable. */

const TIME_UNITS: Record<string, number> = {
  us: 0.001,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
}

/** HAProxy time: `300`, `4s`, `30m`, `1h`; a bare number is milliseconds. */
export function haproxyTimeMs(v: string): number | null {
  const m = /^(\d{1,12})(us|ms|s|m|h|d)?$/.exec(v)
  if (m === null) return null
  return Math.ceil(Number(m[1]) * TIME_UNITS[m[2] ?? 'ms']!)
}

/** Keepalived seconds, possibly fractional (`advert_int 0.1`, `interval 2`), as milliseconds. */
export function keepalivedSecondsMs(v: string): number | null {
  if (!/^\d{1,9}(\.\d{1,6})?$/.test(v)) return null
  return Math.round(Number(v) * 1000)
}

/** A decimal integer within bounds. */
export function intIn(v: string | undefined, min: number, max: number): number | null {
  if (v === undefined || !/^-?\d{1,12}$/.test(v)) return null
  const n = Number(v)
  return n >= min && n <= max ? n : null
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1024,
  mb: 1024 ** 2,
  gb: 1024 ** 3,
  tb: 1024 ** 4,
}

/** Patroni's `lag=` value: bytes, or with a PostgreSQL-style unit (`16MB`, `1GB`, 1024-based). */
export function patroniLagBytes(v: string): number | null {
  const m = /^(\d{1,15})\s*([a-zA-Z]{0,2})$/.exec(v)
  if (m === null) return null
  const unit = SIZE_UNITS[m[2]!.toLowerCase()]
  if (unit === undefined) return null
  const n = Number(m[1]) * unit
  return Number.isSafeInteger(n) ? n : null
}
