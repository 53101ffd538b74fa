import { canonicalJson } from '../config-sync/config-hash.js'
import type { Reconfigurable } from '../core/contracts.js'
import type { Logger } from '../log.js'
import type { VipDriver } from './types.js'

/**
 * The VIP driver as a config part: it applies what it can of a `vip` edit (scripts and ARP settings
 * in place, a new address moved); a new driver kind waits for a restart.
 */
export function vipPart(vip: VipDriver, logger: Logger): Reconfigurable {
  const log = logger.child({ component: 'vip' })
  return {
    name: 'vip',
    async reconfigure(next, prev) {
      if (canonicalJson(next.vip) === canonicalJson(prev.vip)) return
      try {
        await vip.reconfigure(next.vip)
      } catch (e) {
        // the election keeps the address it holds; the driver's own state says what it has
        log.error(
          { code: 'VIP_RECONFIGURE_FAILED', err: e instanceof Error ? e.message : String(e) },
          'could not apply the new VIP settings',
        )
      }
    },
    restartOnly: (started, now) => (started.vip.driver === now.vip.driver ? [] : ['vip.driver']),
  }
}
