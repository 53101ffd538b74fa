import type { VipConfig } from '@pgmesh/protocol'
import type { Logger } from '../log.js'
import type { CommandGate } from '../run-command.js'
import { createExecDriver } from './exec-driver.js'
import { createLinuxDriver } from './linux-driver.js'
import { createNoneDriver } from './none-driver.js'
import { createPairDriver, firstOfPair, secondOfPair } from './pair-driver.js'
import type { VipDriver } from './types.js'

export type { VipDriver, VipState } from './types.js'

export interface VipDriverOptions {
  readonly config: VipConfig
  /** `node.vip.interface`: required by the linux driver */
  readonly iface: string | undefined
  readonly node: string
  readonly logger: Logger
  /** linux driver: run `ip` and `arping` inside this network namespace (tests) */
  readonly netns?: string
  /** linux driver: every `ip` command is killed after this long. Default 5000 */
  readonly commandTimeoutMs?: number
  /** linux driver: sessions through the proxy whose local address is `ip` (what `quiesce()` waits for) */
  readonly sessionsTo?: (ip: string) => number
  /** which notify-script programs this node allows (node.allow); absent: every script runs */
  readonly commands?: CommandGate
  /** linux driver: the monotonic clock the election reports its lease in (`lease(until)`). Default performance.now */
  readonly mono?: () => number
  /** internal: the second VIP of a dual-stack pair */
  readonly second?: boolean
}

/** The driver `config.driver` names; throws when the linux driver lacks its address or interface. */
export function createVipDriver(opts: VipDriverOptions): VipDriver {
  const logger = opts.logger.child({ component: 'vip' })
  const { config, node } = opts
  const commands = opts.commands === undefined ? {} : { commands: opts.commands }
  switch (config.driver) {
    case 'linux': {
      if (config.address === undefined) throw new Error('the linux VIP driver needs cluster.vip.address')
      if (opts.iface === undefined) throw new Error('the linux VIP driver needs node.vip.interface')
      if (config.secondAddress !== undefined) {
        const linux = (c: VipConfig, second: boolean) =>
          createVipDriver({ ...opts, config: c, ...(second ? { second } : {}) })
        return createPairDriver(linux(firstOfPair(config), false), linux(secondOfPair(config), true), logger)
      }
      return createLinuxDriver({
        config,
        address: config.address,
        iface: opts.iface,
        node,
        logger,
        ...(opts.netns !== undefined ? { netns: opts.netns } : {}),
        ...(opts.commandTimeoutMs !== undefined ? { commandTimeoutMs: opts.commandTimeoutMs } : {}),
        ...(opts.sessionsTo !== undefined ? { sessionsTo: opts.sessionsTo } : {}),
        ...commands,
        ...(opts.mono !== undefined ? { mono: opts.mono } : {}),
        ...(opts.second === true ? { second: true } : {}),
      })
    }
    case 'exec':
      return createExecDriver({ config, node, logger, ...commands })
    case 'none':
      return createNoneDriver({ config, node, logger, ...commands })
  }
}
