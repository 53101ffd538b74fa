import type { Release } from '@pgmesh/protocol'
import { fastElectionDelay, isFresh, updatePeer } from './common.js'
import { isVoter } from './quorum.js'
import { releaseMaster } from './shared-steps.js'
import type { Draft, Out, ReleaseReason } from './types.js'

/** `quorum: majority`: how MASTER is given up, and how a follower notices its MASTER is gone. */

export function handOver(
  d: Draft,
  now: number,
  out: Out,
  reason: ReleaseReason,
  successor: string | null,
): void {
  d.lostLeader = null
  d.round = null
  releaseMaster(d, now, out, reason, successor)
}

/** The lease ran out before a quorum renewed it: the VIP must go now. */
export function expireLease(d: Draft, now: number, out: Out): void {
  if (d.role === 'leader' && d.lead !== null && now >= d.lead.leaseUntil) {
    handOver(d, now, out, 'leaseExpired', null)
  }
}

/** The present, eligible voter with the highest effective priority (ties: the higher id). */
export function bestSuccessor(d: Draft, now: number): string | null {
  let best: string | null = null
  let bestPriority = 0
  for (const [id, p] of d.peers) {
    if (!p.eligible || !isFresh(d, p, now) || !isVoter(d.voters, id)) continue
    if (
      best === null ||
      p.effectivePriority > bestPriority ||
      (p.effectivePriority === bestPriority && id > best)
    ) {
      best = id
      bestPriority = p.effectivePriority
    }
  }
  return best
}

export function onRelease(d: Draft, from: string, r: Release, now: number): void {
  const prev = d.peers.get(from)
  updatePeer(d, from, {
    heardAt: now,
    disconnected: false,
    holder: false,
    releasedTerm: Math.max(prev?.releasedTerm ?? -1, r.term),
  })
  if (d.promise !== null && d.promise.to === from && r.term >= d.promise.term) d.promise = null
  if (d.role === 'leader') return
  if (d.leader === from || d.leader === null) {
    d.leader = null
    d.lostLeader = from
    const at = r.successor === d.opts.self ? now : now + fastElectionDelay(d, now, new Set([from]))
    d.electionAt = d.electionAt === null ? at : Math.min(d.electionAt, at)
  }
}

/**
 * Fast path: a closed connection to the MASTER starts the election as soon as our promise to it runs
 * out, instead of waiting for missed renewals. It never shortens a promise: a connection can close
 * while the MASTER process lives on (and a paused one closes nothing).
 */
export function onDisconnect(d: Draft, id: string, now: number): void {
  if (!d.peers.has(id)) return
  updatePeer(d, id, { disconnected: true })
  if (d.role === 'leader' || d.leader !== id) return
  d.lostLeader = id
  const promiseEnd = d.promise !== null && d.promise.to === id ? d.promise.until : now
  const at = Math.max(now, promiseEnd) + fastElectionDelay(d, now, new Set([id]))
  d.electionAt = d.electionAt === null ? at : Math.min(d.electionAt, at)
}
