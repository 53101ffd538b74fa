import { createHash } from 'node:crypto'

/** JSON with object keys sorted at every level: the same config always gives the same bytes. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    typeof v === 'object' && v !== null && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  )
}

export function configHash(cluster: Record<string, unknown>): string {
  return createHash('sha256').update(canonicalJson(cluster)).digest('hex')
}
