import type { ScriptDriverOptions } from './exec-driver.js'
import { createScriptDriver } from './exec-driver.js'
import type { VipDriver } from './types.js'

/** `none`: no address; the MASTER is only recorded (notify scripts, if any, still run). */
export function createNoneDriver(opts: ScriptDriverOptions): VipDriver {
  return createScriptDriver('none', opts)
}
