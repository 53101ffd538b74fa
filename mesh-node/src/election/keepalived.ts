import type { ElectionMessage } from '@pgmesh/protocol'
import {
  betterPeers,
  electionDelay,
  fastElectionDelay,
  noExclusions,
  selfPriority,
  statusMessage,
  updatePeer,
} from './common.js'
import { outranks } from './priority.js'
import { recordCheck, recordMaintenance, recordStatus, releaseMaster, setMembers } from './shared-steps.js'
import type { Draft, ElectionEvent, Out, ReleaseReason } from './types.js'

/**
 * `quorum: none`: Keepalived's VRRP behaviour. The MASTER adverts its priority every heartbeat; a
 * BACKUP takes over when adverts stop (or at once on a release or a closed connection) unless it
 * hears a better eligible node; a worse MASTER yields to a better advert. No votes, no lease: both
 * sides of a partition hold the VIP.
 */
export function stepNone(d: Draft, event: ElectionEvent, now: number, out: Out): void {
  if (d.role === 'stopped') return
  switch (event.type) {
    case 'timer':
      break
    case 'message':
      onMessage(d, event.from, event.msg, now, out)
      break
    case 'report':
      // no voter configurations in this mode
      return
    case 'peerDisconnected':
      if (!d.peers.has(event.id)) break
      updatePeer(d, event.id, { disconnected: true, holder: false })
      if (d.role !== 'leader' && d.leader === event.id) masterGone(d, event.id, now)
      break
    case 'members':
      setMembers(d, event.ids)
      break
    case 'check':
      if (!recordCheck(d, event.name, event.passing)) break
      out.push({ type: 'broadcast', msg: statusMessage(d) })
      if (d.role === 'leader' && !selfPriority(d).eligible) stepDown(d, now, out, 'fault')
      break
    case 'maintenance':
      if (!recordMaintenance(d, event.enabled)) break
      // release first: a status still saying "holder" but not eligible invites every BACKUP to preempt
      if (d.role === 'leader' && event.enabled) stepDown(d, now, out, 'maintenance')
      out.push({ type: 'broadcast', msg: statusMessage(d) })
      break
    case 'options':
      // applied by electionStep; the effective priority may have moved
      out.push({ type: 'broadcast', msg: statusMessage(d) })
      if (d.role === 'leader' && !selfPriority(d).eligible) stepDown(d, now, out, 'fault')
      break
    case 'shutdown':
      if (d.role === 'leader') stepDown(d, now, out, 'shutdown')
      d.role = 'stopped'
      d.electionAt = null
      out.push({ type: 'broadcast', msg: statusMessage(d) })
      return
  }
  advance(d, now, out)
}

function stepDown(d: Draft, now: number, out: Out, reason: ReleaseReason): void {
  releaseMaster(d, now, out, reason, null)
}

function masterGone(d: Draft, id: string, now: number): void {
  d.leader = null
  d.lostLeader = id
  d.preemptAt = null
  d.electionAt = now + fastElectionDelay(d, now, new Set([id]))
}

function onMessage(d: Draft, from: string, msg: ElectionMessage, now: number, out: Out): void {
  if (from === d.opts.self) return
  if (msg.kind === 'release') {
    updatePeer(d, from, { heardAt: now, disconnected: false, holder: false })
    if (d.role !== 'leader' && (d.leader === from || d.leader === null)) masterGone(d, from, now)
    return
  }
  if (msg.kind !== 'status') return
  recordStatus(d, from, msg, now)
  if (!msg.holder) return
  const self = selfPriority(d)
  const theyWin =
    msg.eligible && (!self.eligible || outranks(msg.effectivePriority, from, self.priority, d.opts.self))
  if (d.role === 'leader') {
    if (theyWin) stepDown(d, now, out, 'preempted')
    else out.push({ type: 'broadcast', msg: statusMessage(d) })
    if (d.role === 'leader') return
  }
  d.leader = from
  d.lostLeader = null
  d.electionAt = now + electionDelay(d, now, new Set([from]))
  const preempt = !theyWin && self.eligible && !d.opts.config.nopreempt
  d.preemptAt = preempt ? (d.preemptAt ?? now + d.opts.config.preemptDelayMs) : null
}

function advance(d: Draft, now: number, out: Out): void {
  const c = d.opts.config
  if (d.role === 'leader' && d.lead !== null) {
    if (now >= d.lead.nextRenewalAt) {
      out.push({ type: 'broadcast', msg: statusMessage(d) })
      d.lead = { ...d.lead, nextRenewalAt: now + c.heartbeatIntervalMs }
      d.nextStatusAt = now + c.statusIntervalMs
    }
    return
  }
  const due = (d.electionAt !== null && now >= d.electionAt) || (d.preemptAt !== null && now >= d.preemptAt)
  if (due) {
    const self = selfPriority(d)
    const exclude = d.lostLeader === null ? noExclusions : new Set([d.lostLeader])
    const blocked = betterPeers(d, now, self.priority, d.opts.self, exclude).length > 0
    if (self.eligible && (!blocked || (d.preemptAt !== null && now >= d.preemptAt))) {
      d.role = 'leader'
      d.leader = d.opts.self
      d.preemptAt = null
      d.electionAt = null
      d.lead = {
        acks: new Map(),
        leaseUntil: Number.POSITIVE_INFINITY,
        configAcks: new Set(),
        preemptSince: null,
        nextRenewalAt: now,
      }
      out.push({ type: 'acquireVip', leaseUntil: Number.POSITIVE_INFINITY })
      advance(d, now, out)
      return
    }
    d.preemptAt = null
    d.electionAt = now + electionDelay(d, now, exclude)
  }
  if (now >= d.nextStatusAt) {
    out.push({ type: 'broadcast', msg: statusMessage(d) })
    d.nextStatusAt = now + c.statusIntervalMs
  }
}

export function nextWakeNone(d: Draft): number {
  if (d.role === 'stopped') return Number.POSITIVE_INFINITY
  if (d.role === 'leader' && d.lead !== null) return d.lead.nextRenewalAt
  let at = d.nextStatusAt
  if (d.electionAt !== null) at = Math.min(at, d.electionAt)
  if (d.preemptAt !== null) at = Math.min(at, d.preemptAt)
  return at
}
