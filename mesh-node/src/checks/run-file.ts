import { stat } from 'node:fs/promises'
import type { CheckResult, CheckRunner } from './check-result.js'
import { errorMessage } from './check-result.js'

const ABSENT = new Set(['ENOENT', 'ENOTDIR'])

/** Looks at a path once: whether it exists; rejects on any other error. */
export type FileProbe = (path: string) => Promise<boolean>

const statProbe: FileProbe = async (path) => {
  try {
    await stat(path)
    return true
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code !== undefined && ABSENT.has(code)) return false
    throw e
  }
}

/**
 * At most this many file-check probes wait on libuv's thread pool at once (4 threads by default,
 * shared with fsync, DNS lookups and every other file call). A stat on a hung network file system
 * holds its thread until the server answers and cannot be cancelled, so a timeout alone would let
 * each new run take another thread.
 */
export const MAX_FILE_PROBES_IN_FLIGHT = 2

interface Pending {
  readonly result: Promise<boolean>
  readonly startedAt: number
}

/**
 * A file-check runner: one probe per path in flight (a run while the previous probe is still
 * blocked waits on that one instead of starting another) and at most `maxInFlight` probes in all.
 */
export function createFileCheckRunner(
  probe: FileProbe = statProbe,
  maxInFlight = MAX_FILE_PROBES_IN_FLIGHT,
): CheckRunner<'file'> {
  const inFlight = new Map<string, Pending>()

  const pendingFor = (path: string): Pending | string => {
    const existing = inFlight.get(path)
    if (existing !== undefined) return existing
    if (inFlight.size >= maxInFlight) {
      return `not probed: ${inFlight.size} file check(s) are blocked on the file system (${[...inFlight.keys()].join(', ')})`
    }
    const result = Promise.resolve().then(() => probe(path))
    const p: Pending = { result, startedAt: performance.now() }
    inFlight.set(path, p)
    const done = () => {
      if (inFlight.get(path) === p) inFlight.delete(path)
    }
    result.then(done, done)
    return p
  }

  return (check, signal) => {
    if (signal.aborted) return Promise.resolve({ ok: false, error: 'aborted' })
    const pending = pendingFor(check.path)
    if (typeof pending === 'string') return Promise.resolve({ ok: false, error: pending })
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<CheckResult>((resolve) => {
      timer = setTimeout(() => {
        const blockedMs = Math.round(performance.now() - pending.startedAt)
        resolve({
          ok: false,
          error: `timed out after ${check.timeoutMs} ms (its probe has been blocked for ${blockedMs} ms; no other starts until it returns)`,
        })
      }, check.timeoutMs)
    })
    const verdict = pending.result.then(
      (exists): CheckResult => {
        if (check.failWhen === 'exists') {
          return exists ? { ok: false, error: `${check.path} exists` } : { ok: true }
        }
        return exists ? { ok: true } : { ok: false, error: `${check.path} is missing` }
      },
      (e: unknown): CheckResult => ({ ok: false, error: errorMessage(e) }),
    )
    return Promise.race([verdict, timeout]).finally(() => clearTimeout(timer))
  }
}

/** `failWhen: 'exists'` fails while the path exists (a maintenance flag); `'missing'` fails while it is absent. */
export const runFileCheck: CheckRunner<'file'> = createFileCheckRunner()
