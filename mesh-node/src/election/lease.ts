import type { LeaseAck, LeaseRenew, VoterConfigId } from '@pgmesh/protocol'
import { betterPeers, electionAudience, selfPriority } from './common.js'
import { handOver } from './handover.js'
import { compareConfigIds, configId, leaseDeadline } from './quorum.js'
import { adoptTerm, isOurVoter, mayAdoptConfig, mayAdoptTerm, withinJump } from './terms.js'
import type { Draft, Out } from './types.js'

/**
 * `quorum: majority`: the MASTER's lease. Every renewal a voter acknowledges is a promise "I back
 * only you until my clock has advanced leaseMs"; the MASTER counts its lease from the send time of
 * the renewal a quorum acknowledged, minus maxClockDriftMs.
 */

/** The MASTER's renewal tick: one broadcast that renews the lease and carries the voter configuration. */
export function sendRenewal(d: Draft, now: number, out: Out): void {
  const lead = d.lead
  const voters = d.voters
  if (lead === null || voters === null) return
  const self = selfPriority(d)
  // the voters need every renewal; the other members only learn who the MASTER is (and its voters),
  // so they get one every statusIntervalMs, and the MASTER's sends do not grow with the mesh
  const announce = now >= (lead.nextAnnounceAt ?? Number.NEGATIVE_INFINITY)
  const msg: LeaseRenew = {
    kind: 'lease',
    term: d.term,
    sentAt: now,
    effectivePriority: self.priority,
    eligible: self.eligible,
    config: voters,
  }
  const only = announce ? undefined : electionAudience(d)
  out.push(only === undefined ? { type: 'broadcast', msg } : { type: 'broadcast', msg, only })
  d.lead = {
    ...lead,
    nextRenewalAt: now + d.opts.config.heartbeatIntervalMs,
    nextAnnounceAt: announce ? now + d.opts.config.statusIntervalMs : lead.nextAnnounceAt,
  }
}

export function onRenewal(d: Draft, from: string, m: LeaseRenew, now: number, out: Out): void {
  const self = selfPriority(d)
  // a member outside the voters hears only every statusIntervalMs (sendRenewal) and answers those:
  // its acknowledgements are how the MASTER sees it is ready to become a voter
  const reply = (ok: boolean) => {
    const msg: LeaseAck = {
      kind: 'leaseAck',
      term: d.term,
      sentAt: m.sentAt,
      ok,
      ...(ok ? { promiseMs: d.opts.config.leaseMs } : {}),
      effectivePriority: self.priority,
      eligible: self.eligible,
      config: configId(d.voters),
    }
    out.push({ type: 'send', to: from, msg })
  }
  const releasedTerm = d.peers.get(from)?.releasedTerm ?? -1
  if (m.term < d.term || m.term <= releasedTerm || (d.role === 'leader' && m.term === d.term)) {
    reply(false)
    return
  }
  if (!renewalTrusted(d, from, m)) {
    d.refusedFrames += 1
    reply(false)
    return
  }
  if (d.role === 'leader') handOver(d, now, out, 'higherTerm', null)
  const promisedElsewhere = d.promise !== null && d.promise.to !== from && now < d.promise.until
  if (now < d.quietUntil || promisedElsewhere) {
    reply(false)
    return
  }
  adoptTerm(d, m.term)
  if (d.role !== 'follower') {
    d.role = 'follower'
    d.round = null
  }
  d.leader = from
  d.lostLeader = null
  promise(d, from, m.term, now)
  if (mayAdoptConfig(d, from, m.config, m.term)) d.voters = m.config
  d.electionAt = now + followTimeout(d, now, from)
  reply(true)
}

/**
 * A renewal may make us follow its sender (and take its term) when the sender is a voter of our
 * configuration, or of the newer one it brings (a follower that missed a change learns it from the
 * MASTER). A MASTER steps down only for a voter of its own configuration: it made the newest one it
 * knows, and should a newer one exist without it, its lease runs out anyway, the voters' promises
 * being given elsewhere.
 */
function renewalTrusted(d: Draft, from: string, m: LeaseRenew): boolean {
  if (!withinJump(d.term, m.term)) return false
  if (d.voters !== null && isOurVoter(d, from)) return true
  if (d.role === 'leader') return false
  return m.config.voters.includes(from) && mayAdoptConfig(d, from, m.config, m.term)
}

/**
 * Silence after which a follower suspects its MASTER. The jitter is fixed per node (a hash of its id)
 * so it needs no random draw per renewal; the rank puts better-placed nodes first.
 */
function followTimeout(d: Draft, now: number, leader: string): number {
  const c = d.opts.config
  const spread = c.electionTimeoutMaxMs - c.electionTimeoutMinMs
  let h = 0
  for (let i = 0; i < d.opts.self.length; i++) h = (h * 31 + d.opts.self.charCodeAt(i)) >>> 0
  const self = selfPriority(d)
  const rank = betterPeers(d, now, self.priority, d.opts.self, new Set([leader])).length
  return c.electionTimeoutMinMs + (h % 1000) * (spread / 1000) + rank * c.rankStaggerMs
}

export function onAck(d: Draft, from: string, a: LeaseAck, now: number, out: Out): void {
  if (d.role !== 'leader') return
  if (a.term > d.term) {
    if (!mayAdoptTerm(d, from, a.term)) {
      d.refusedFrames += 1
      return
    }
    handOver(d, now, out, 'higherTerm', null)
    adoptTerm(d, a.term)
    return
  }
  if (a.ok && a.term === d.term) recordAck(d, from, a.sentAt, a.promiseMs, a.config)
}

/**
 * A promise to back `to` for this node's `leaseMs`. It never ends earlier than a promise already
 * running (after `leaseMs` shrank, the MASTER still counts on the longer one), and the longest
 * length still running is persisted for the quiet time after a restart.
 */
export function promise(d: Draft, to: string, term: number, now: number): void {
  const ms = d.opts.config.leaseMs
  const until = Math.max(now + ms, d.promise?.until ?? Number.NEGATIVE_INFINITY)
  d.promise = { to, term, until }
  if (ms >= d.promiseMs || now >= d.promiseMsUntil) {
    d.promiseMs = ms
    d.promiseMsUntil = until
  }
}

export function recordAck(
  d: Draft,
  from: string,
  sentAt: number,
  promiseMs: number | undefined,
  config: VoterConfigId | null,
): void {
  const lead = d.lead
  if (lead === null || d.voters === null) return
  const acks = new Map(lead.acks)
  const end = sentAt + (promiseMs ?? d.opts.config.leaseMs)
  acks.set(from, Math.max(acks.get(from) ?? Number.NEGATIVE_INFINITY, end))
  let configAcks = lead.configAcks
  if (compareConfigIds(config, configId(d.voters)) === 0 && !configAcks.has(from)) {
    configAcks = new Set([...configAcks, from])
  }
  const leaseUntil = leaseDeadline(d.voters, acks, d.opts.self, d.opts.config.maxClockDriftMs)
  d.lead = { ...lead, acks, configAcks, leaseUntil: Math.max(lead.leaseUntil, leaseUntil) }
}
