import type { VipDriver, VipState } from '../vip/vip-driver.js'

export interface VipCounts {
  /** `enter('MASTER')` calls that resolved / rejected */
  readonly acquired: number
  readonly acquireFailed: number
  /** leaving MASTER (to BACKUP, FAULT or STOP): resolved / rejected */
  readonly released: number
  readonly releaseFailed: number
}

export interface CountingVipDriver extends VipDriver {
  counts(): VipCounts
}

/**
 * Wraps a VIP driver to count acquisitions and releases, so the drivers and the election driver
 * stay untouched. A move between BACKUP, FAULT and STOP is not a release: the VIP was not held.
 */
export function countVipTransitions(inner: VipDriver): CountingVipDriver {
  const c = { acquired: 0, acquireFailed: 0, released: 0, releaseFailed: 0 }
  let last: VipState | null = null
  const enter = async (state: VipState, signal?: AbortSignal): Promise<void> => {
    const acquiring = state === 'MASTER'
    const releasing = !acquiring && last === 'MASTER'
    last = state
    try {
      await inner.enter(state, signal)
    } catch (e) {
      if (acquiring) c.acquireFailed++
      else if (releasing) c.releaseFailed++
      throw e
    }
    if (acquiring) c.acquired++
    else if (releasing) c.released++
  }
  return {
    kind: inner.kind,
    start: (signal) => inner.start(signal),
    enter,
    announce: () => inner.announce(),
    holds: () => inner.holds(),
    reconfigure: (config, signal) => inner.reconfigure(config, signal),
    // only what the driver has: a caller asks `vip.quiesce?.()`
    ...(inner.quiesce === undefined
      ? {}
      : { quiesce: (signal?: AbortSignal) => inner.quiesce?.(signal) ?? Promise.resolve() }),
    ...(inner.unquiesce === undefined ? {} : { unquiesce: () => inner.unquiesce?.() ?? Promise.resolve() }),
    ...(inner.lease === undefined ? {} : { lease: (until: number | null) => inner.lease?.(until) }),
    ...(inner.onLost === undefined
      ? {}
      : { onLost: (listener: (reason: string) => void) => inner.onLost?.(listener) }),
    stop: () => inner.stop(),
    counts: () => ({ ...c }),
  }
}
