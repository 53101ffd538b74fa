import { describeFailure, runCommand } from '../run-command.js'
import type { CheckResult, CheckRunner } from './check-result.js'

/** Passes when the command (argv, no shell) exits 0 within `timeoutMs`; killed with SIGKILL otherwise. */
export const runExecCheck: CheckRunner<'exec'> = async (check, signal): Promise<CheckResult> => {
  const r = await runCommand(check.command, { timeoutMs: check.timeoutMs, signal, maxOutputBytes: 4096 })
  if (r.code === 0 && !r.timedOut && !r.aborted) return { ok: true }
  return { ok: false, error: describeFailure(r, check.timeoutMs) }
}
