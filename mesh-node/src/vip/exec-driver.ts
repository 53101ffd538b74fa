import type { VipConfig } from '@pgmesh/protocol'
import type { Logger } from '../log.js'
import type { CommandGate } from '../run-command.js'
import { createNotifier } from './notifier.js'
import type { VipDriver, VipState } from './types.js'

export interface ScriptDriverOptions {
  readonly config: VipConfig
  readonly node: string
  /** already a child logger with component 'vip' */
  readonly logger: Logger
  /** which notify-script programs this node allows (node.allow); absent: every script runs */
  readonly commands?: CommandGate
}

/**
 * A driver that holds no address itself: it records the state and runs the notify scripts
 * (`exec`: they move the VIP, a cloud IP say; `none`: optional hooks). `enter()` never waits for a
 * script. `reconfigure()` swaps the scripts and PGMESH_VIP for the next runs; a MASTER whose
 * address changed runs its master script again, with the new PGMESH_VIP, so the scripts move
 * the VIP to the new address (the old one is theirs to let go).
 */
export function createScriptDriver(kind: 'exec' | 'none', opts: ScriptDriverOptions): VipDriver {
  let config = opts.config
  const notifier = createNotifier({
    scripts: config.notify,
    vip: config.address?.cidr ?? '',
    node: opts.node,
    logger: opts.logger,
    ...(opts.commands === undefined ? {} : { commands: opts.commands }),
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
    reconfigure(next) {
      if (next.driver !== kind) {
        opts.logger.warn(
          { driver: next.driver, running: kind },
          'vip.driver changed: applies at the next restart; the running driver keeps its settings',
        )
        return Promise.resolve()
      }
      const from = config.address?.cidr ?? ''
      const to = next.address?.cidr ?? ''
      const notifyChanged = JSON.stringify(config.notify) !== JSON.stringify(next.notify)
      config = next
      notifier.update(next.notify, to)
      if (from === to && !notifyChanged) return Promise.resolve()
      opts.logger.info(
        { driver: kind, vip: to, ...(from !== to ? { from } : {}), notify: notifyChanged, state },
        'VIP settings changed',
      )
      if (from !== to && state === 'MASTER' && !stopped) notifier.notify('MASTER')
      return Promise.resolve()
    },
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
