import type { TrackedCheck } from '@pgmesh/protocol'

/** One run of a check. `error` says why a run failed. */
export interface CheckResult {
  readonly ok: boolean
  readonly error?: string
}

/**
 * Runs one check once. Enforces the check's own `timeoutMs`; `signal` aborts the run early
 * (on stop). Never rejects.
 */
export type CheckRunner<K extends TrackedCheck['kind'] = TrackedCheck['kind']> = (
  check: Extract<TrackedCheck, { kind: K }>,
  signal: AbortSignal,
) => Promise<CheckResult>

/** `fetch failed: connect ECONNREFUSED 127.0.0.1:1` rather than just `fetch failed`. */
export function errorMessage(e: unknown): string {
  if (!(e instanceof Error)) return String(e)
  const code = (x: Error) => ('code' in x && typeof x.code === 'string' ? x.code : '')
  const text = (x: Error) => x.message || code(x) || x.name
  return e.cause instanceof Error ? `${text(e)}: ${text(e.cause)}` : text(e)
}
