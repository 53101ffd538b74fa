import type { TrackedCheck } from '@pgmesh/protocol'
import type { WeightedCheck } from '../election/priority.js'
import type { Logger } from '../log.js'
import type { CommandGate } from '../run-command.js'
import type { CheckResult } from './check-result.js'
import { errorMessage } from './check-result.js'
import { runExecCheck } from './run-exec.js'
import { runFileCheck } from './run-file.js'
import { runHttpCheck } from './run-http.js'
import { runTcpCheck } from './run-tcp.js'

export interface TrackedCheckView {
  readonly name: string
  readonly kind: TrackedCheck['kind']
  readonly weight: number
  readonly passing: boolean
  /** false until the first run has finished */
  readonly ran: boolean
  readonly lastError: string | null
  /** Date.now() at the end of the last run */
  readonly lastRunAt: number | null
}

export interface TrackedChecks {
  /** runs every check at once, then every `intervalMs`; a second call does nothing */
  start(): void
  /** clears the timers, kills running checks and waits for them; idempotent */
  stop(): Promise<void>
  views(): TrackedCheckView[]
  /** names of the checks that count as failing (every check until its first pass) */
  failing(): ReadonlySet<string>
  /** the checks the election counts: all of them, except one added live that has no result yet */
  weighted(): WeightedCheck[]
  /**
   * A cluster config edit: an unchanged check keeps running with its state; a changed one keeps its
   * state and restarts with the new definition; a removed one is stopped; a new one starts at once
   * and counts only from its first result (counting it as failing until then would take the VIP
   * from every node at the same moment).
   */
  update(checks: readonly TrackedCheck[]): { added: string[]; changed: string[]; removed: string[] }
}

export interface TrackedChecksOptions {
  readonly checks: readonly TrackedCheck[]
  /** called on every state change, including a first result that passes; a throw is logged */
  readonly onChange: (name: string, passing: boolean) => void
  readonly logger: Logger
  /** which exec-check programs this node allows (node.allow); absent: every program runs */
  readonly commands?: CommandGate
}

/** A runner that ignores its own timeout is given up on this much later (the run counts as failed). */
const RUNNER_GRACE_MS = 1_000

function runOnce(check: TrackedCheck, signal: AbortSignal, gate?: CommandGate): Promise<CheckResult> {
  switch (check.kind) {
    case 'exec':
      return runExecCheck(check, signal, gate)
    case 'http':
      return runHttpCheck(check, signal)
    case 'tcp':
      return runTcpCheck(check, signal)
    case 'file':
      return runFileCheck(check, signal)
  }
}

interface CheckState {
  readonly check: TrackedCheck
  /** aborted when the check is stopped, replaced or removed */
  readonly abort: AbortController
  /** false for a check added live until its first result */
  counted: boolean
  passing: boolean
  ran: boolean
  passes: number
  failures: number
  lastError: string | null
  lastRunAt: number | null
  timer: NodeJS.Timeout | null
  /** the run in progress, settled only when the runner has really finished */
  running: Promise<void> | null
}

/**
 * Keepalived's track_script: each check runs on its own timer; `fall` consecutive failures make a
 * passing check fail, `rise` consecutive passes make a failing one pass. Every check counts as
 * failing until its first result, which sets its state directly.
 */
export function createTrackedChecks(opts: TrackedChecksOptions): TrackedChecks {
  const log = opts.logger.child({ component: 'checks' })
  const stopping = new AbortController()
  const unique = (checks: readonly TrackedCheck[]) => {
    const seen = new Set<string>()
    for (const c of checks) {
      if (seen.has(c.name)) throw new Error(`duplicate check name "${c.name}"`)
      seen.add(c.name)
    }
  }
  const fresh = (check: TrackedCheck, counted: boolean): CheckState => ({
    check,
    abort: new AbortController(),
    counted,
    passing: false,
    ran: false,
    passes: 0,
    failures: 0,
    lastError: null,
    lastRunAt: null,
    timer: null,
    running: null,
  })
  unique(opts.checks)
  let states: CheckState[] = opts.checks.map((check) => fresh(check, true))
  let started = false
  let stopped: Promise<void> | null = null

  const notify = (name: string, passing: boolean) => {
    try {
      opts.onChange(name, passing)
    } catch (e) {
      log.error({ check: name, err: errorMessage(e) }, 'check state listener threw')
    }
  }

  const record = (s: CheckState, r: CheckResult) => {
    const c = s.check
    s.lastRunAt = Date.now()
    s.lastError = r.ok ? null : (r.error ?? 'failed')
    if (r.ok) {
      s.passes++
      s.failures = 0
    } else {
      s.failures++
      s.passes = 0
      log.debug(
        { check: c.name, kind: c.kind, reason: s.lastError, failures: s.failures },
        'check run failed',
      )
    }
    const first = !s.ran
    s.ran = true
    if (!s.counted) {
      s.counted = true
      s.passing = r.ok
      log.info(
        { check: c.name, kind: c.kind, weight: c.weight, passing: s.passing, reason: s.lastError },
        `new check ${s.passing ? 'passing' : 'failing'}`,
      )
      notify(c.name, s.passing)
      return
    }
    let change = false
    if (first) change = r.ok
    else if (r.ok && !s.passing && s.passes >= c.rise) change = true
    else if (!r.ok && s.passing && s.failures >= c.fall) change = true
    if (!change) {
      if (first) {
        log.info({ check: c.name, kind: c.kind, weight: c.weight, reason: s.lastError }, 'check failing')
      }
      return
    }
    s.passing = r.ok
    log.info(
      {
        check: c.name,
        kind: c.kind,
        weight: c.weight,
        passing: s.passing,
        ...(r.ok ? {} : { reason: s.lastError }),
      },
      s.passing ? 'check passing' : 'check failing',
    )
    notify(c.name, s.passing)
  }

  const schedule = (s: CheckState, delayMs: number) => {
    if (s.abort.signal.aborted) return
    s.timer = setTimeout(() => {
      s.timer = null
      run(s)
    }, delayMs)
    s.timer.unref()
  }

  const run = (s: CheckState) => {
    if (s.abort.signal.aborted || s.running !== null) return
    const startedAt = performance.now()
    const c = s.check
    const ac = new AbortController()
    const onStop = () => ac.abort()
    s.abort.signal.addEventListener('abort', onStop, { once: true })
    const attempt = Promise.resolve()
      .then(() => runOnce(c, ac.signal, opts.commands))
      .catch((e: unknown): CheckResult => ({ ok: false, error: errorMessage(e) }))
    let recorded = false
    // safety net for a runner stuck past its own timeout: the run counts as failed now, but the
    // next one starts only once this one has really finished, so runs never overlap
    const guard = setTimeout(() => {
      if (s.abort.signal.aborted) return
      recorded = true
      ac.abort()
      record(s, { ok: false, error: `did not finish within ${c.timeoutMs} ms` })
    }, c.timeoutMs + RUNNER_GRACE_MS)
    guard.unref()
    s.running = attempt.then((r) => {
      clearTimeout(guard)
      s.abort.signal.removeEventListener('abort', onStop)
      s.running = null
      if (s.abort.signal.aborted) return
      if (!recorded) record(s, r)
      schedule(s, Math.max(0, startedAt + c.intervalMs - performance.now()))
    })
  }

  /** a replaced or removed check: its timer cleared, a run in progress killed */
  const retire = (s: CheckState) => {
    s.abort.abort()
    if (s.timer !== null) clearTimeout(s.timer)
    s.timer = null
  }

  return {
    start() {
      if (started || stopping.signal.aborted) return
      started = true
      for (const s of states) run(s)
    },
    stop() {
      if (stopped !== null) return stopped
      stopping.abort()
      for (const s of states) {
        s.abort.abort()
        if (s.timer !== null) clearTimeout(s.timer)
        s.timer = null
      }
      const running = states.map((s) => s.running).filter((p): p is Promise<void> => p !== null)
      // killed children exit at once; only a runner stuck in the kernel (a hung NFS stat) is left behind
      let bound: NodeJS.Timeout | undefined
      stopped = Promise.race([
        Promise.all(running),
        new Promise((resolve) => {
          bound = setTimeout(resolve, RUNNER_GRACE_MS)
        }),
      ]).then(() => clearTimeout(bound))
      return stopped
    },
    views() {
      return states.map((s) => ({
        name: s.check.name,
        kind: s.check.kind,
        weight: s.check.weight,
        passing: s.passing,
        ran: s.ran,
        lastError: s.lastError,
        lastRunAt: s.lastRunAt,
      }))
    },
    failing() {
      return new Set(states.filter((s) => s.counted && !s.passing).map((s) => s.check.name))
    },
    weighted() {
      return states.filter((s) => s.counted).map((s) => ({ name: s.check.name, weight: s.check.weight }))
    },
    update(checks) {
      unique(checks)
      const before = new Map(states.map((s) => [s.check.name, s]))
      const out = { added: [] as string[], changed: [] as string[], removed: [] as string[] }
      const next = checks.map((check) => {
        const prev = before.get(check.name)
        before.delete(check.name)
        if (prev !== undefined && JSON.stringify(prev.check) === JSON.stringify(check)) return prev
        if (prev === undefined) {
          out.added.push(check.name)
          return fresh(check, false)
        }
        out.changed.push(check.name)
        retire(prev)
        return {
          ...fresh(check, prev.counted),
          passing: prev.passing,
          ran: prev.ran,
          lastError: prev.lastError,
          lastRunAt: prev.lastRunAt,
        }
      })
      for (const s of before.values()) {
        out.removed.push(s.check.name)
        retire(s)
      }
      states = next
      if (started && !stopping.signal.aborted)
        for (const s of states) if (s.running === null && s.timer === null) run(s)
      if (out.added.length + out.changed.length + out.removed.length > 0) log.info(out, 'checks updated')
      return out
    },
  }
}
