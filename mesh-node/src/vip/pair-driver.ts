import type { VipConfig } from '@pgmesh/protocol'
import type { Logger } from '../log.js'
import type { VipDriver, VipState } from './types.js'

/** What the first VIP of a pair runs with: `address`, the notify scripts. */
export function firstOfPair(config: VipConfig): VipConfig {
  const { secondAddress: _, ...rest } = config
  return rest
}

/** What the second runs with: `secondAddress` as its address, no notify scripts (they ran for the pair). */
export function secondOfPair(config: VipConfig): VipConfig {
  const { secondAddress, ...rest } = config
  return {
    ...rest,
    ...(secondAddress === undefined ? {} : { address: secondAddress }),
    notify: { timeoutMs: config.notify.timeoutMs },
  }
}

const failure = (r: PromiseSettledResult<unknown>[]): unknown =>
  r.find((x): x is PromiseRejectedResult => x.status === 'rejected')?.reason

/**
 * A dual-stack pair of VIPs (`vip.address` + `vip.secondAddress`) as one driver: both are
 * acquired, fenced, announced and released together, and the pair is held only while both are.
 * A MASTER whose second address fails is a MASTER without its VIP (the election retries, then
 * goes FAULT), as with one address.
 */
export function createPairDriver(first: VipDriver, second: VipDriver, logger: Logger): VipDriver {
  const both = async (op: (d: VipDriver) => Promise<void>) => {
    const r = await Promise.allSettled([op(first), op(second)])
    const e = failure(r)
    if (e !== undefined) throw e
  }
  let hasSecond = true
  const pair: VipDriver = {
    kind: 'linux',
    start: (signal) => both((d) => d.start(signal)),
    async enter(state: VipState, signal?: AbortSignal) {
      if (state === 'MASTER') {
        // in order, so a failure is the first one's or the second's alone
        await first.enter(state, signal)
        await second.enter(state, signal)
        return
      }
      await both((d) => d.enter(state, signal))
    },
    announce() {
      first.announce()
      second.announce()
    },
    holds: () => first.holds() && second.holds(),
    async reconfigure(config, signal) {
      if (config.secondAddress === undefined && hasSecond) {
        logger.warn({}, 'vip.secondAddress removed: applies at the next restart; the pair is kept until then')
        await first.reconfigure(firstOfPair(config), signal)
        return
      }
      await both((d) => d.reconfigure(d === first ? firstOfPair(config) : secondOfPair(config), signal))
    },
    quiesce: (signal) => both((d) => d.quiesce?.(signal) ?? Promise.resolve()),
    unquiesce: () => both((d) => d.unquiesce?.() ?? Promise.resolve()),
    lease(until) {
      first.lease?.(until)
      second.lease?.(until)
    },
    onLost(listener) {
      first.onLost?.(listener)
      second.onLost?.(listener)
    },
    async stop() {
      hasSecond = false
      await both((d) => d.stop())
    },
  }
  return pair
}
