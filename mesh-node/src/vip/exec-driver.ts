import type { VipConfig } from '@pgmesh/protocol'
import type { Logger } from '../log.js'
import { createNotifier } from './notifier.js'
import type { VipDriver, VipState } from './types.js'

export interface ScriptDriverOptions {
  readonly config: VipConfig
  readonly node: string
  /** already a child logger with component 'vip' */
  readonly logger: Logger
}

/**
 * A driver that holds no address itself: it records the state and runs the notify scripts
 * (`exec`: they move the VIP, a cloud IP say; `none`: optional hooks). `enter()` never waits for a script.
 */
export function createScriptDriver(kind: 'exec' | 'none', opts: ScriptDriverOptions): VipDriver {
  const notifier = createNotifier({
    scripts: opts.config.notify,
    vip: opts.config.address?.cidr ?? '',
    node: opts.node,
    logger: opts.logger,
  })
  let state: VipState | null = null
  let stopped = false
  let stopping: Promise<void> | null = null

  const enter = (next: VipState): Promise<void> => {
    if (stopped && next === 'MASTER')
      return Promise.reject(new Error('VIP driver stopped: cannot enter MASTER'))
    if (next !== state) opts.logger.info({ driver: kind, state: next, from: state }, 'VIP state')
    state = next
    notifier.notify(next)
    return Promise.resolve()
  }

  return {
    kind,
    start: () => Promise.resolve(),
    enter: (next) => enter(next),
    announce() {
      // nothing to announce: the scripts own the address
    },
    holds: () => state === 'MASTER',
    stop() {
      if (stopping !== null) return stopping
      stopped = true
      // Keepalived runs notify_stop on shutdown; a caller that entered STOP already is not notified twice
      if (state !== null && state !== 'STOP') void enter('STOP')
      stopping = notifier.stop()
      return stopping
    },
  }
}

/** `exec`: the notify scripts move the VIP. */
export function createExecDriver(opts: ScriptDriverOptions): VipDriver {
  if (opts.config.notify.master === undefined) {
    opts.logger.warn('vip.driver is exec but no notify.master script is configured: nothing takes the VIP')
  }
  return createScriptDriver('exec', opts)
}
