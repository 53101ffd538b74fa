import { betterPeers, noExclusions, selfPriority } from './common.js'
import { bestSuccessor, handOver } from './handover.js'
import { compareConfigIds, configId } from './quorum.js'
import type { Draft, Out } from './types.js'

/**
 * `quorum: majority`, on the MASTER's renewal ticks: Keepalived's preemption (and `nopreempt`,
 * `preempt_delay`). It hands over only to a better voter that acknowledges our renewals and runs our
 * voter configuration, so the successor can win the next term at once.
 */
export function checkPreemption(d: Draft, now: number, out: Out): void {
  const lead = d.lead
  if (lead === null) return
  const self = selfPriority(d)
  if (!self.eligible) {
    handOver(d, now, out, 'fault', bestSuccessor(d, now))
    return
  }
  const c = d.opts.config
  const best = c.nopreempt ? null : bestSuccessor(d, now)
  const bestView = best === null ? undefined : d.peers.get(best)
  const ackedRecently = best !== null && (lead.acks.get(best) ?? Number.NEGATIVE_INFINITY) >= now
  const better =
    best !== null &&
    bestView !== undefined &&
    ackedRecently &&
    compareConfigIds(bestView.config, configId(d.voters)) === 0 &&
    betterPeers(d, now, self.priority, d.opts.self, noExclusions).includes(best)
  if (!better) {
    if (lead.preemptSince !== null) d.lead = { ...lead, preemptSince: null }
    return
  }
  const since = lead.preemptSince ?? now
  if (now - since >= c.preemptDelayMs) handOver(d, now, out, 'preempted', best)
  else if (lead.preemptSince === null) d.lead = { ...lead, preemptSince: since }
}
