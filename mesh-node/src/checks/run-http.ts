import type { CheckResult, CheckRunner } from './check-result.js'
import { errorMessage } from './check-result.js'

/** Passes when a GET of the URL answers with one of `expectStatus` within `timeoutMs`. Redirects are not followed. */
export const runHttpCheck: CheckRunner<'http'> = async (check, signal): Promise<CheckResult> => {
  const timeout = AbortSignal.timeout(check.timeoutMs)
  try {
    const res = await fetch(check.url, {
      signal: AbortSignal.any([signal, timeout]),
      redirect: 'manual',
      headers: { 'user-agent': 'pgmesh-check' },
    })
    // the body is never needed: release the connection
    await res.body?.cancel().catch(() => undefined)
    if (check.expectStatus.includes(res.status)) return { ok: true }
    return { ok: false, error: `HTTP ${res.status}, expected ${check.expectStatus.join(' or ')}` }
  } catch (e) {
    if (timeout.aborted) return { ok: false, error: `timed out after ${check.timeoutMs} ms` }
    if (signal.aborted) return { ok: false, error: 'aborted' }
    return { ok: false, error: errorMessage(e) }
  }
}
