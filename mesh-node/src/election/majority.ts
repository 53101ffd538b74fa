import type { ElectionMessage } from '@pgmesh/protocol'
import { broadcastStatus, electionDelay, noExclusions, selfPriority, updatePeer } from './common.js'
import { bestSuccessor, expireLease, handOver, onDisconnect, onRelease } from './handover.js'
import { onAck, onRenewal, sendRenewal } from './lease.js'
import { checkPreemption } from './preemption.js'
import { configId } from './quorum.js'
import { recordCheck, recordMaintenance, recordReport, recordStatus, setMembers } from './shared-steps.js'
import type { Draft, ElectionEvent, Out } from './types.js'
import { progressVoterConfig } from './voter-changes.js'
import { answerDeferred, canCampaign, onVoteRequest, onVoteResponse, startVote } from './votes.js'

/**
 * `quorum: majority`: Raft-style terms and (pre-)votes without a log, plus leases. This file routes
 * events to the sub-protocols: votes.ts (elections), lease.ts (renewals and promises),
 * voter-changes.ts (joint voter configurations), preemption.ts, handover.ts (giving MASTER up,
 * noticing it gone).
 *
 * Single holder: every vote and every lease ack is a promise "I back only you until my clock has
 * advanced leaseMs", and a node holds at most one promise. The MASTER counts a lease from the send
 * time of the renewal a quorum acknowledged, minus maxClockDriftMs, so its lease ends (and it
 * releases the VIP) before the promise of at least one member of any quorum ends; a new MASTER
 * needs that member's vote. Votes are deferred, not refused, while a promise runs out.
 */
export function stepMajority(d: Draft, event: ElectionEvent, now: number, out: Out): void {
  if (d.role === 'stopped') return
  expireLease(d, now, out)
  switch (event.type) {
    case 'timer':
      break
    case 'message':
      onMessage(d, event.from, event.msg, now, out)
      break
    case 'peerDisconnected':
      onDisconnect(d, event.id, now)
      break
    case 'report':
      recordReport(d, event.from, event.config)
      return
    case 'members':
      setMembers(d, event.ids)
      break
    case 'check':
      if (!recordCheck(d, event.name, event.passing)) break
      broadcastStatus(d, out)
      if (d.role === 'leader' && !selfPriority(d).eligible) {
        handOver(d, now, out, 'fault', bestSuccessor(d, now))
      }
      break
    case 'maintenance':
      // like a failing weight-0 check: the MASTER hands over to the best other node at once
      if (!recordMaintenance(d, event.enabled)) break
      broadcastStatus(d, out)
      if (d.role === 'leader' && event.enabled) {
        handOver(d, now, out, 'maintenance', bestSuccessor(d, now))
      }
      break
    case 'options':
      // applied by electionStep; the effective priority may have moved
      broadcastStatus(d, out)
      if (d.role === 'leader' && !selfPriority(d).eligible) {
        handOver(d, now, out, 'fault', bestSuccessor(d, now))
      }
      break
    case 'shutdown':
      if (d.role === 'leader') handOver(d, now, out, 'shutdown', bestSuccessor(d, now))
      d.role = 'stopped'
      d.electionAt = null
      d.round = null
      d.deferred = new Map()
      broadcastStatus(d, out)
      return
  }
  advance(
    d,
    now,
    out,
    event.type === 'members' ||
      event.type === 'check' ||
      event.type === 'maintenance' ||
      event.type === 'options',
  )
}

function onMessage(d: Draft, from: string, msg: ElectionMessage, now: number, out: Out): void {
  if (from === d.opts.self) return
  switch (msg.kind) {
    case 'status':
      recordStatus(d, from, msg, now)
      return
    case 'voteRequest':
      updatePeer(d, from, {
        heardAt: now,
        disconnected: false,
        effectivePriority: msg.effectivePriority,
        eligible: msg.eligible,
        config: msg.config,
      })
      onVoteRequest(d, from, msg, now, out)
      return
    case 'voteResponse':
      updatePeer(d, from, { heardAt: now, disconnected: false })
      onVoteResponse(d, from, msg, now, out)
      return
    case 'lease':
      updatePeer(d, from, {
        heardAt: now,
        disconnected: false,
        term: msg.term,
        effectivePriority: msg.effectivePriority,
        eligible: msg.eligible,
        holder: true,
        config: configId(msg.config),
      })
      onRenewal(d, from, msg, now, out)
      return
    case 'leaseAck':
      updatePeer(d, from, {
        heardAt: now,
        disconnected: false,
        effectivePriority: msg.effectivePriority,
        eligible: msg.eligible,
        config: msg.config,
      })
      onAck(d, from, msg, now, out)
      return
    case 'release':
      onRelease(d, from, msg, now)
      return
  }
}

function advance(d: Draft, now: number, out: Out, force: boolean): void {
  if (d.role === 'leader') leaderDuties(d, now, out, force)
  else {
    answerDeferred(d, now, out)
    if (d.electionAt !== null && now >= d.electionAt) {
      if (canCampaign(d, now)) startVote(d, now, true, out)
      else {
        const promiseEnd = d.promise !== null && d.promise.to !== d.opts.self ? d.promise.until : now
        d.electionAt = Math.max(now, promiseEnd, d.quietUntil) + electionDelay(d, now, lostLeaderSet(d))
      }
    }
  }
  if (now >= d.nextStatusAt) {
    // a MASTER's renewals carry all a status does (term, priority, eligibility, configuration), to
    // the same members every renewal and to everyone every statusIntervalMs: no status on top
    if (!renewing(d)) broadcastStatus(d, out)
    d.nextStatusAt = now + d.opts.config.statusIntervalMs
  }
}

function renewing(d: Draft): boolean {
  return d.role === 'leader' && d.lead !== null && d.voters !== null
}

function lostLeaderSet(d: Draft): ReadonlySet<string> {
  return d.lostLeader === null ? noExclusions : new Set([d.lostLeader])
}

/** On every renewal tick (and after a members or check change): config changes, preemption, renewal. */
function leaderDuties(d: Draft, now: number, out: Out, force: boolean): void {
  if (d.lead === null || (!force && now < d.lead.nextRenewalAt)) return
  progressVoterConfig(d, now, out)
  if (d.role !== 'leader') return
  checkPreemption(d, now, out)
  if (d.role !== 'leader' || d.lead === null || d.voters === null) return
  if (now >= d.lead.nextRenewalAt) sendRenewal(d, now, out)
}

/** The next time this state needs the clock (the wake timer). */
export function nextWakeMajority(d: Draft): number {
  let at = d.nextStatusAt
  if (d.role === 'stopped') return Number.POSITIVE_INFINITY
  if (d.role === 'leader' && d.lead !== null) {
    // preemption is checked on renewal ticks
    return Math.min(at, d.lead.nextRenewalAt, d.lead.leaseUntil)
  }
  if (d.electionAt !== null) at = Math.min(at, d.electionAt)
  if (d.deferred.size > 0) {
    const promiseEnd = d.promise === null ? 0 : d.promise.until
    let oldest = Number.POSITIVE_INFINITY
    for (const v of d.deferred.values()) oldest = Math.min(oldest, v.receivedAt)
    const c = d.opts.config
    at = Math.min(at, Math.max(promiseEnd, d.quietUntil), oldest + c.leaseMs + c.electionTimeoutMaxMs + 1)
  }
  return at
}
