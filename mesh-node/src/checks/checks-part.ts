import { canonicalJson } from '../config-sync/config-hash.js'
import type { Reconfigurable } from '../core/contracts.js'
import type { TrackedChecks } from './tracked-checks.js'

/** Tracked checks as a config part: unchanged checks keep running and keep their state. */
export function checksPart(checks: TrackedChecks): Reconfigurable {
  return {
    name: 'checks',
    reconfigure(next, prev) {
      if (canonicalJson(next.checks) !== canonicalJson(prev.checks)) checks.update(next.checks)
    },
  }
}
