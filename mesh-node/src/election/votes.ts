import type { VoteRequest, VoteResponse, VoterConfigId } from '@pgmesh/protocol'
import { betterPeers, electionDelay, noExclusions, selfPriority } from './common.js'
import { handOver } from './handover.js'
import { promise, recordAck } from './lease.js'
import { compareConfigIds, configId, hasQuorum, isVoter, leaseDeadline } from './quorum.js'
import { adoptTerm, isOurVoter, mayAdoptTerm, withinJump } from './terms.js'
import type { Draft, Out } from './types.js'

/**
 * `quorum: majority`: Raft-style pre-votes and votes without a log. A granted real vote is a lease
 * promise; votes are deferred, not refused, while another promise runs out.
 */

type VoteDecision = 'grant' | 'defer' | 'reject'

function decideVote(d: Draft, from: string, r: VoteRequest, now: number): VoteDecision {
  // a joining node has no voter configuration yet: like a new Raft server it may still vote
  if (d.voters !== null && !isVoter(d.voters, from)) return 'reject'
  if (r.term < d.term) return 'reject'
  if (!withinJump(d.term, r.term) || (d.voters === null && !withinJump(0, r.config.version))) {
    d.refusedFrames += 1
    return 'reject'
  }
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

export function onVoteRequest(d: Draft, from: string, r: VoteRequest, now: number, out: Out): void {
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

/** Votes deferred while a promise ran out: answered once it has, dropped when too old to matter. */
export function answerDeferred(d: Draft, now: number, out: Out): void {
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

export function onVoteResponse(d: Draft, from: string, r: VoteResponse, now: number, out: Out): void {
  const round = d.round
  if (d.role === 'leader' && r.granted && !r.preVote && r.term === d.term) {
    // a vote that arrives after we won is a lease ack for our vote request
    recordAck(d, from, r.sentAt, r.promiseMs, null)
    return
  }
  if (!r.granted && r.term > d.term) {
    if (!mayAdoptTerm(d, from, r.term)) {
      d.refusedFrames += 1
      return
    }
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
  if (!isOurVoter(d, from)) return
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

export function canCampaign(d: Draft, now: number): boolean {
  if (d.voters === null || !isVoter(d.voters, d.opts.self) || now < d.quietUntil) return false
  const self = selfPriority(d)
  if (!self.eligible || outrankedByPresentNode(d, d.opts.self, self.priority, configId(d.voters), now)) {
    return false
  }
  return d.promise === null || d.promise.to === d.opts.self || now >= d.promise.until
}

export function startVote(d: Draft, now: number, preVote: boolean, out: Out): void {
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
