import { stat } from 'node:fs/promises'
import type { CheckResult, CheckRunner } from './check-result.js'
import { errorMessage } from './check-result.js'

const ABSENT = new Set(['ENOENT', 'ENOTDIR'])

/** `failWhen: 'exists'` fails while the path exists (a maintenance flag); `'missing'` fails while it is absent. */
export const runFileCheck: CheckRunner<'file'> = (check, signal) => {
  let timer: NodeJS.Timeout | undefined
  // a stat on a hung network file system cannot be cancelled: stop waiting for it instead
  const timeout = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(
      () => resolve({ ok: false, error: `timed out after ${check.timeoutMs} ms` }),
      check.timeoutMs,
    )
  })
  const probe = (async (): Promise<CheckResult> => {
    if (signal.aborted) return { ok: false, error: 'aborted' }
    let exists: boolean
    try {
      await stat(check.path)
      exists = true
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if (code === undefined || !ABSENT.has(code)) return { ok: false, error: errorMessage(e) }
      exists = false
    }
    if (check.failWhen === 'exists') {
      return exists ? { ok: false, error: `${check.path} exists` } : { ok: true }
    }
    return exists ? { ok: true } : { ok: false, error: `${check.path} is missing` }
  })()
  return Promise.race([probe, timeout]).finally(() => clearTimeout(timer))
}
