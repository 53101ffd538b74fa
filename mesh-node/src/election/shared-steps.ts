import type { Release, StatusMessage, VoterConfigId } from '@pgmesh/protocol'
import { electionDelay, noExclusions, updatePeer } from './common.js'
import { compareConfigIds } from './quorum.js'
import type { Draft, Out, ReleaseReason } from './types.js'

/** What both quorum modes do with the same event; each mode decides what follows. */

/** The membership layer's member list, deduplicated and sorted. */
export function setMembers(d: Draft, ids: readonly string[]): void {
  d.members = [...new Set(ids)].sort()
}

/** Records a tracked check's result; false when it changes nothing (an unknown check, the same result). */
export function recordCheck(d: Draft, name: string, passing: boolean): boolean {
  if (!d.opts.checks.some((c) => c.name === name) || d.failingChecks.has(name) === !passing) return false
  const failing = new Set(d.failingChecks)
  if (passing) failing.delete(name)
  else failing.add(name)
  d.failingChecks = failing
  return true
}

/** False when the node already is (or is not) in maintenance. */
export function recordMaintenance(d: Draft, enabled: boolean): boolean {
  if (d.maintenance === enabled) return false
  d.maintenance = enabled
  return true
}

/** A peer's status: all it says about itself. */
export function recordStatus(d: Draft, from: string, msg: StatusMessage, now: number): void {
  updatePeer(d, from, {
    heardAt: now,
    disconnected: false,
    term: msg.term,
    effectivePriority: msg.effectivePriority,
    eligible: msg.eligible,
    holder: msg.holder,
    config: msg.config,
  })
}

/**
 * A member's gossiped report of its voter configuration. Only ever raises what we know of it (a
 * heartbeat may arrive after a newer status frame), and says nothing of its presence: a peer heard
 * only through gossip cannot be sent a vote request, so it does not count as fresh.
 */
export function recordReport(d: Draft, from: string, config: VoterConfigId | null): void {
  if (from === d.opts.self || config === null) return
  const prev = d.peers.get(from)
  if (prev !== undefined && compareConfigIds(config, prev.config) <= 0) return
  updatePeer(d, from, { config })
}

/**
 * Gives MASTER up: removes the VIP first, then tells everyone, so peers may act at once (voters drop
 * their promise to us, BACKUPs take over). The node becomes a follower with a fresh election timeout.
 */
export function releaseMaster(
  d: Draft,
  now: number,
  out: Out,
  reason: ReleaseReason,
  successor: string | null,
): void {
  out.push({ type: 'releaseVip', reason })
  const msg: Release = { kind: 'release', term: d.term, successor }
  out.push({ type: 'broadcast', msg })
  d.role = 'follower'
  d.lead = null
  d.leader = null
  d.electionAt = now + electionDelay(d, now, noExclusions)
}
