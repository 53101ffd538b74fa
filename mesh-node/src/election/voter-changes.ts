import { isFresh } from './common.js'
import { bestSuccessor, expireLease, handOver } from './handover.js'
import { hasQuorum, leaseDeadline, sameMembers } from './quorum.js'
import type { Draft, Out } from './types.js'

/**
 * Moves the agreed voters towards the membership layer's member list, one joint configuration at a
 * time, and only once the current configuration is acknowledged by a quorum in this term (Raft's
 * rule that a new leader commits in its own term before changing the configuration).
 */
export function progressVoterConfig(d: Draft, now: number, out: Out): void {
  const lead = d.lead
  const voters = d.voters
  if (lead === null || voters === null || !hasQuorum(voters, lead.configAcks)) return
  let next = voters
  if (voters.prev !== null) {
    next = { term: d.term, version: voters.version + 1, voters: voters.voters, prev: null }
  } else if (!voters.voters.includes(d.opts.self)) {
    handOver(d, now, out, 'removed', bestSuccessor(d, now))
    return
  } else {
    const desired = desiredVoters(d, voters.voters, now)
    if (!sameMembers(desired, voters.voters)) {
      next = { term: d.term, version: voters.version + 1, voters: desired, prev: voters.voters }
    }
  }
  if (next === voters) return
  d.voters = next
  const leaseUntil = leaseDeadline(next, lead.acks, d.opts.self, d.opts.config.maxClockDriftMs)
  d.lead = {
    ...lead,
    configAcks: new Set([d.opts.self]),
    leaseUntil: Math.min(lead.leaseUntil, leaseUntil),
    nextRenewalAt: now,
  }
  expireLease(d, now, out)
}

/**
 * The member list as the membership layer reports it, except: never without ourselves, never
 * without a voter we still hear from (a lagging member list must not shrink the quorum under live
 * nodes), and a new member only once it acknowledges our renewals (Raft's catch-up before a server
 * counts toward quorums; a joiner in its restart quiet period would cost us the lease).
 */
function desiredVoters(d: Draft, current: readonly string[], now: number): string[] {
  const acks = d.lead?.acks
  const desired = new Set<string>([d.opts.self])
  for (const id of d.members) {
    // a promise still running: it acknowledged a renewal within one lease
    if (current.includes(id) || (acks?.get(id) ?? Number.NEGATIVE_INFINITY) >= now) desired.add(id)
  }
  for (const id of current) {
    const p = d.peers.get(id)
    if (p !== undefined && isFresh(d, p, now)) desired.add(id)
  }
  return capVoters(d, desired, current, now)
}

/**
 * At most `maxVoters` (self always, while it leads): the members we hear from by effective priority,
 * eligible ones first — only a voter can become MASTER, so the best candidates must vote — then
 * silent voters, so a dead voter is replaced as soon as a live member can take its place.
 */
function capVoters(
  d: Draft,
  desired: ReadonlySet<string>,
  current: readonly string[],
  now: number,
): string[] {
  const max = d.opts.config.maxVoters
  if (desired.size <= max) return [...desired].sort()
  const rank = (id: string): number => {
    if (id === d.opts.self) return 0
    const p = d.peers.get(id)
    if (p === undefined || !isFresh(d, p, now)) return current.includes(id) ? 3 : 4
    return p.eligible ? 1 : 2
  }
  const priority = (id: string) => d.peers.get(id)?.effectivePriority ?? 0
  const ordered = [...desired].sort(
    (a, b) => rank(a) - rank(b) || priority(b) - priority(a) || (a < b ? -1 : a > b ? 1 : 0),
  )
  return ordered.slice(0, max).sort()
}
