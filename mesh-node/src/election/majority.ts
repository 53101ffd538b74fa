import type {
  ElectionMessage,
  LeaseAck,
  LeaseRenew,
  Release,
  VoteRequest,
  VoteResponse,
  VoterConfigId,
} from '@pgmesh/protocol'
import {
  betterPeers,
  electionDelay,
  fastElectionDelay,
  isFresh,
  noExclusions,
  selfPriority,
  statusMessage,
  updatePeer,
} from './common.js'
import { compareConfigIds, configId, hasQuorum, isVoter, leaseDeadline, sameMembers } from './quorum.js'
import type { Draft, ElectionAction, ElectionEvent, ReleaseReason } from './types.js'

/**
 * `quorum: majority`: Raft-style terms and (pre-)votes without a log, plus leases.
 *
 * Single holder: every vote and every lease ack is a promise "I back only you until my clock has
 * advanced leaseMs", and a node holds at most one promise. The MASTER counts a lease from the send
 * time of the renewal a quorum acknowledged, minus maxClockDriftMs, so its lease ends (and it
 * releases the VIP) before the promise of at least one member of any quorum ends; a new MASTER
 * needs that member's vote. Votes are deferred, not refused, while a promise runs out.
 */
type Out = ElectionAction[]

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
    case 'members':
      d.members = [...new Set(event.ids)].sort()
      break
    case 'check':
      onCheck(d, event.name, event.passing, now, out)
      break
    case 'maintenance':
      onMaintenance(d, event.enabled, now, out)
      break
    case 'options':
      // applied by electionStep; the effective priority may have moved
      out.push({ type: 'broadcast', msg: statusMessage(d) })
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
      out.push({ type: 'broadcast', msg: statusMessage(d) })
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

function expireLease(d: Draft, now: number, out: Out): void {
  if (d.role === 'leader' && d.lead !== null && now >= d.lead.leaseUntil) {
    handOver(d, now, out, 'leaseExpired', null)
  }
}

/** Releases the VIP first, then tells everyone, so voters may drop their promise to us at once. */
function handOver(d: Draft, now: number, out: Out, reason: ReleaseReason, successor: string | null): void {
  out.push({ type: 'releaseVip', reason })
  const msg: Release = { kind: 'release', term: d.term, successor }
  out.push({ type: 'broadcast', msg })
  d.role = 'follower'
  d.lead = null
  d.leader = null
  d.lostLeader = null
  d.round = null
  d.electionAt = now + electionDelay(d, now, noExclusions)
}

function onMessage(d: Draft, from: string, msg: ElectionMessage, now: number, out: Out): void {
  if (from === d.opts.self) return
  switch (msg.kind) {
    case 'status':
      updatePeer(d, from, {
        heardAt: now,
        disconnected: false,
        term: msg.term,
        effectivePriority: msg.effectivePriority,
        eligible: msg.eligible,
        holder: msg.holder,
        config: msg.config,
      })
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

function adoptTerm(d: Draft, term: number): void {
  if (term > d.term) {
    d.term = term
    d.votedFor = null
  }
}

type VoteDecision = 'grant' | 'defer' | 'reject'

function decideVote(d: Draft, from: string, r: VoteRequest, now: number): VoteDecision {
  // a joining node has no voter configuration yet: like a new Raft server it may still vote
  if (d.voters !== null && !isVoter(d.voters, from)) return 'reject'
  if (r.term < d.term) return 'reject'
  if (r.term === d.term && d.votedFor !== null && d.votedFor !== from) return 'reject'
  if (compareConfigIds(r.config, configId(d.voters)) < 0) return 'reject'
  if (!r.eligible || d.role === 'leader') return 'reject'
  if (outrankedByPresentNode(d, from, r.effectivePriority, r.config, now)) return 'reject'
  if (now < d.quietUntil) return 'defer'
  if (d.promise !== null && d.promise.to !== from && now < d.promise.until) return 'defer'
  return 'grant'
}

/**
 * Keepalived semantics: only the best eligible node present should win (ourselves included), among
 * the nodes that could win: a node whose voter configuration is older than the candidate's cannot.
 */
function outrankedByPresentNode(
  d: Draft,
  candidate: string,
  priority: number,
  candidateConfig: VoterConfigId | null,
  now: number,
): boolean {
  // our MASTER (live or lost) never blocks: while it lives our promise to it defers the vote anyway
  const exclude = new Set<string>()
  if (d.lostLeader !== null) exclude.add(d.lostLeader)
  if (d.leader !== null) exclude.add(d.leader)
  if (betterPeers(d, now, priority, candidate, exclude, candidateConfig).length > 0) return true
  if (candidate === d.opts.self || !isVoter(d.voters, d.opts.self)) return false
  if (compareConfigIds(configId(d.voters), candidateConfig) < 0) return false
  const self = selfPriority(d)
  return self.eligible && self.priority > priority
}

function onVoteRequest(d: Draft, from: string, r: VoteRequest, now: number, out: Out): void {
  const decision = decideVote(d, from, r, now)
  if (decision === 'defer') {
    const deferred = new Map(d.deferred)
    deferred.set(from, { request: r, receivedAt: now })
    d.deferred = deferred
    return
  }
  answerVote(d, from, r, decision === 'grant', now, out)
}

function answerVote(d: Draft, from: string, r: VoteRequest, grant: boolean, now: number, out: Out): void {
  if (grant && !r.preVote) {
    adoptTerm(d, r.term)
    d.votedFor = from
    promise(d, from, r.term, now)
    d.role = 'follower'
    d.round = null
    d.leader = null
    d.electionAt = now + electionDelay(d, now, noExclusions)
  }
  const msg: VoteResponse = {
    kind: 'voteResponse',
    preVote: r.preVote,
    term: grant ? r.term : d.term,
    granted: grant,
    sentAt: r.sentAt,
    ...(grant && !r.preVote ? { promiseMs: d.opts.config.leaseMs } : {}),
  }
  out.push({ type: 'send', to: from, msg })
}

function answerDeferred(d: Draft, now: number, out: Out): void {
  if (d.deferred.size === 0) return
  const c = d.opts.config
  const deferred = new Map(d.deferred)
  for (const [from, { request, receivedAt }] of d.deferred) {
    if (now - receivedAt > c.leaseMs + c.electionTimeoutMaxMs) {
      deferred.delete(from)
      continue
    }
    const decision = decideVote(d, from, request, now)
    if (decision === 'defer') continue
    deferred.delete(from)
    answerVote(d, from, request, decision === 'grant', now, out)
  }
  d.deferred = deferred
}

function onVoteResponse(d: Draft, from: string, r: VoteResponse, now: number, out: Out): void {
  const round = d.round
  if (d.role === 'leader' && r.granted && !r.preVote && r.term === d.term) {
    // a vote that arrives after we won is a lease ack for our vote request
    recordAck(d, from, r.sentAt, r.promiseMs, null)
    return
  }
  if (!r.granted && r.term > d.term) {
    if (d.role === 'leader') handOver(d, now, out, 'higherTerm', null)
    adoptTerm(d, r.term)
    if (d.role === 'candidate' || d.role === 'precandidate') {
      d.role = 'follower'
      d.round = null
    }
    return
  }
  if (round === null || d.voters === null || !r.granted) return
  if (r.preVote !== round.preVote || r.sentAt !== round.sentAt || r.term !== round.term) return
  if (!isVoter(d.voters, from) && !(d.voters.prev?.includes(from) ?? false)) return
  const grants = new Set(round.grants)
  grants.add(from)
  const promised = new Map(round.promised)
  if (!round.preVote) promised.set(from, r.promiseMs ?? d.opts.config.leaseMs)
  d.round = { ...round, grants, promised }
  tallyRound(d, now, out)
}

function tallyRound(d: Draft, now: number, out: Out): void {
  const round = d.round
  if (round === null || d.voters === null || !hasQuorum(d.voters, round.grants)) return
  if (round.preVote) startVote(d, now, false, out)
  else becomeLeader(d, now, out)
}

function canCampaign(d: Draft, now: number): boolean {
  if (d.voters === null || !isVoter(d.voters, d.opts.self) || now < d.quietUntil) return false
  const self = selfPriority(d)
  if (!self.eligible || outrankedByPresentNode(d, d.opts.self, self.priority, configId(d.voters), now)) {
    return false
  }
  return d.promise === null || d.promise.to === d.opts.self || now >= d.promise.until
}

function startVote(d: Draft, now: number, preVote: boolean, out: Out): void {
  const voters = d.voters
  if (voters === null) return
  const self = selfPriority(d)
  if (!preVote) {
    d.term += 1
    d.votedFor = d.opts.self
  }
  const term = preVote ? d.term + 1 : d.term
  d.role = preVote ? 'precandidate' : 'candidate'
  d.round = { preVote, term, sentAt: now, grants: new Set([d.opts.self]), promised: new Map() }
  d.electionAt = now + electionDelay(d, now, noExclusions)
  const msg: VoteRequest = {
    kind: 'voteRequest',
    preVote,
    term,
    sentAt: now,
    effectivePriority: self.priority,
    eligible: self.eligible,
    config: { term: voters.term, version: voters.version },
  }
  out.push({ type: 'broadcast', msg })
  tallyRound(d, now, out)
}

function becomeLeader(d: Draft, now: number, out: Out): void {
  const round = d.round
  const voters = d.voters
  if (round === null || voters === null) return
  const c = d.opts.config
  const acks = new Map<string, number>()
  for (const id of round.grants) {
    if (id !== d.opts.self) acks.set(id, round.sentAt + (round.promised.get(id) ?? c.leaseMs))
  }
  const leaseUntil = leaseDeadline(voters, acks, d.opts.self, c.maxClockDriftMs)
  d.round = null
  if (leaseUntil <= now) {
    d.role = 'follower'
    return
  }
  d.role = 'leader'
  d.leader = d.opts.self
  d.lostLeader = null
  d.electionAt = null
  d.promise = null
  d.lead = { acks, leaseUntil, configAcks: new Set([d.opts.self]), preemptSince: null, nextRenewalAt: now }
  out.push({ type: 'acquireVip', leaseUntil })
  for (const [from, { request }] of d.deferred) answerVote(d, from, request, false, now, out)
  d.deferred = new Map()
}

function onRenewal(d: Draft, from: string, m: LeaseRenew, now: number, out: Out): void {
  const self = selfPriority(d)
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
  if (compareConfigIds(configId(m.config), configId(d.voters)) > 0) d.voters = m.config
  d.electionAt = now + followTimeout(d, now, from)
  reply(true)
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

function onAck(d: Draft, from: string, a: LeaseAck, now: number, out: Out): void {
  if (d.role !== 'leader') return
  if (a.term > d.term) {
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
function promise(d: Draft, to: string, term: number, now: number): void {
  const ms = d.opts.config.leaseMs
  const until = Math.max(now + ms, d.promise?.until ?? Number.NEGATIVE_INFINITY)
  d.promise = { to, term, until }
  if (ms >= d.promiseMs || now >= d.promiseMsUntil) {
    d.promiseMs = ms
    d.promiseMsUntil = until
  }
}

function recordAck(
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

function onRelease(d: Draft, from: string, r: Release, now: number): void {
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
function onDisconnect(d: Draft, id: string, now: number): void {
  if (!d.peers.has(id)) return
  updatePeer(d, id, { disconnected: true })
  if (d.role === 'leader' || d.leader !== id) return
  d.lostLeader = id
  const promiseEnd = d.promise !== null && d.promise.to === id ? d.promise.until : now
  const at = Math.max(now, promiseEnd) + fastElectionDelay(d, now, new Set([id]))
  d.electionAt = d.electionAt === null ? at : Math.min(d.electionAt, at)
}

function onCheck(d: Draft, name: string, passing: boolean, now: number, out: Out): void {
  if (!d.opts.checks.some((c) => c.name === name) || d.failingChecks.has(name) === !passing) return
  const failing = new Set(d.failingChecks)
  if (passing) failing.delete(name)
  else failing.add(name)
  d.failingChecks = failing
  out.push({ type: 'broadcast', msg: statusMessage(d) })
  if (d.role === 'leader' && !selfPriority(d).eligible) {
    handOver(d, now, out, 'fault', bestSuccessor(d, now))
  }
}

/** Like a failing weight-0 check: the MASTER hands over to the best other node at once. */
function onMaintenance(d: Draft, enabled: boolean, now: number, out: Out): void {
  if (d.maintenance === enabled) return
  d.maintenance = enabled
  out.push({ type: 'broadcast', msg: statusMessage(d) })
  if (d.role === 'leader' && enabled) handOver(d, now, out, 'maintenance', bestSuccessor(d, now))
}

function bestSuccessor(d: Draft, now: number): string | null {
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
    out.push({ type: 'broadcast', msg: statusMessage(d) })
    d.nextStatusAt = now + d.opts.config.statusIntervalMs
  }
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
  const lead = d.lead
  const voters = d.voters
  if (d.role !== 'leader' || lead === null || voters === null) return
  if (now >= lead.nextRenewalAt) {
    const self = selfPriority(d)
    const msg: LeaseRenew = {
      kind: 'lease',
      term: d.term,
      sentAt: now,
      effectivePriority: self.priority,
      eligible: self.eligible,
      config: voters,
    }
    out.push({ type: 'broadcast', msg })
    d.lead = { ...lead, nextRenewalAt: now + d.opts.config.heartbeatIntervalMs }
  }
}

/**
 * Moves the agreed voters towards the membership layer's member list, one joint configuration at a
 * time, and only once the current configuration is acknowledged by a quorum in this term (Raft's
 * rule that a new leader commits in its own term before changing the configuration).
 */
function progressVoterConfig(d: Draft, now: number, out: Out): void {
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
  return [...desired].sort()
}

function checkPreemption(d: Draft, now: number, out: Out): void {
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
