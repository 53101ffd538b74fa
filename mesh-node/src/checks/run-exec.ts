import type { TrackedCheck } from '@pgmesh/protocol'
import { type CommandGate, describeFailure, runCommand } from '../run-command.js'
import type { CheckResult } from './check-result.js'

/**
 * Passes when the command (argv, no shell) exits 0 within `timeoutMs`; killed with SIGKILL
 * otherwise. A program `gate` refuses is never started and the run fails with
 * COMMAND_NOT_ALLOWED (the check counts as failing, as any check that cannot run).
 */
export async function runExecCheck(
  check: Extract<TrackedCheck, { kind: 'exec' }>,
  signal: AbortSignal,
  gate?: CommandGate,
): Promise<CheckResult> {
  if (gate !== undefined && !gate.allows(check.command)) {
    return { ok: false, error: `COMMAND_NOT_ALLOWED: ${gate.refusal(check.command)}` }
  }
  const r = await runCommand(check.command, { timeoutMs: check.timeoutMs, signal, maxOutputBytes: 4096 })
  if (r.code === 0 && !r.timedOut && !r.aborted) return { ok: true }
  return { ok: false, error: describeFailure(r, check.timeoutMs) }
}
