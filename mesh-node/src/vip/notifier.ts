import type { NotifyScripts } from '@pgmesh/protocol'
import type { Logger } from '../log.js'
import { type CommandGate, describeFailure, runCommand } from '../run-command.js'
import type { VipState } from './types.js'

/**
 * Runs Keepalived-style notify scripts one at a time, in order, without ever making the caller
 * wait: `notify()` only queues.
 */
export interface Notifier {
  notify(state: VipState): void
  /** resolves once nothing is queued or running */
  idle(): Promise<void>
  /** waits for the queue at most `timeoutMs`, then kills what still runs and drops the rest; idempotent */
  stop(): Promise<void>
  /**
   * A config change: scripts that have not started yet (queued states included) run with these
   * scripts and this PGMESH_VIP; one already running finishes as it is.
   */
  update(scripts: NotifyScripts, vip: string): void
  /** scripts run so far: ok, failed (exit, timeout, kill), refused by `node.allow` */
  counts(): NotifyCounts
}

export interface NotifyCounts {
  readonly ok: number
  readonly failed: number
  readonly refused: number
}

export interface NotifierOptions {
  readonly scripts: NotifyScripts
  /** PGMESH_VIP: the VIP's cidr, or '' */
  readonly vip: string
  readonly node: string
  /** already a child logger of the driver */
  readonly logger: Logger
  /** which programs this node allows (node.allow); absent: every script runs */
  readonly commands?: CommandGate
}

/** States queued behind a hanging script beyond this many: the oldest waiting one is dropped. */
export const MAX_QUEUED_NOTIFY = 32

const SCRIPT_KEY = { MASTER: 'master', BACKUP: 'backup', FAULT: 'fault', STOP: 'stop' } as const

export function createNotifier(opts: NotifierOptions): Notifier {
  const log = opts.logger
  let scripts = opts.scripts
  let vip = opts.vip
  const queue: VipState[] = []
  const waiters: (() => void)[] = []
  const abort = new AbortController()
  let running: Promise<void> | null = null
  let stopped: Promise<void> | null = null
  const counts = { ok: 0, failed: 0, refused: 0 }

  const runScript = async (state: VipState, argv: readonly string[]) => {
    if (opts.commands !== undefined && !opts.commands.allows(argv)) {
      // refused scripts count as failed notifications: the state change itself still happens
      counts.refused++
      log.error(
        { state, script: argv[0], code: 'COMMAND_NOT_ALLOWED', reason: opts.commands.refusal(argv) },
        'notify script refused: not allowed by this node',
      )
      return
    }
    const started = performance.now()
    log.debug({ state, script: argv[0] }, 'notify script started')
    const timeoutMs = scripts.timeoutMs
    const r = await runCommand(argv, {
      timeoutMs,
      signal: abort.signal,
      maxOutputBytes: 4096,
      env: { ...process.env, PGMESH_STATE: state, PGMESH_VIP: vip, PGMESH_NODE: opts.node },
    })
    const durationMs = Math.round(performance.now() - started)
    if (r.code === 0 && !r.timedOut && !r.aborted) {
      counts.ok++
      log.info({ state, script: argv[0], durationMs }, 'notify script done')
    } else {
      counts.failed++
      log.warn(
        {
          state,
          script: argv[0],
          exitCode: r.code,
          signal: r.signal,
          durationMs,
          reason: describeFailure(r, timeoutMs),
        },
        'notify script failed',
      )
    }
  }

  const pump = () => {
    if (running !== null) return
    const state = queue.shift()
    if (state === undefined) {
      for (const w of waiters.splice(0)) w()
      return
    }
    const argv = scripts[SCRIPT_KEY[state]]
    running = (argv === undefined ? Promise.resolve() : runScript(state, argv))
      .catch((e: unknown) => log.warn({ state, err: String(e) }, 'notify script failed'))
      .finally(() => {
        running = null
        pump()
      })
  }

  const idle = () => {
    if (running === null && queue.length === 0) return Promise.resolve()
    return new Promise<void>((resolve) => waiters.push(resolve))
  }

  return {
    notify(state) {
      if (scripts[SCRIPT_KEY[state]] === undefined || abort.signal.aborted) return
      if (queue.length >= MAX_QUEUED_NOTIFY) {
        log.warn(
          { dropped: queue.shift(), state },
          'notify scripts are backed up; dropped the oldest waiting state',
        )
      }
      queue.push(state)
      pump()
    },
    idle,
    counts: () => ({ ...counts }),
    update(next, nextVip) {
      scripts = next
      vip = nextVip
    },
    stop() {
      if (stopped !== null) return stopped
      stopped = (async () => {
        let timer: NodeJS.Timeout | undefined
        await Promise.race([
          idle(),
          new Promise((resolve) => {
            timer = setTimeout(resolve, scripts.timeoutMs)
          }),
        ])
        clearTimeout(timer)
        if (queue.length > 0) log.warn({ dropped: queue.length }, 'stopping: notify scripts not run')
        queue.length = 0
        abort.abort()
        await running
        for (const w of waiters.splice(0)) w()
      })()
      return stopped
    },
  }
}
