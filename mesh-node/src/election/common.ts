import type { StatusMessage, VoterConfigId } from '@pgmesh/protocol'
import { type EffectivePriority, effectivePriority, outranks } from './priority.js'
import { compareConfigIds, configId, isVoter } from './quorum.js'
import { nextRandom } from './rng.js'
import type { Draft, ElectionAction, ElectionState, PeerView } from './types.js'

type PriorityInputs = Pick<ElectionState, 'opts' | 'failingChecks' | 'role' | 'maintenance'>

export function selfPriority(d: PriorityInputs): EffectivePriority {
  const p = effectivePriority(d.opts.priority, d.opts.checks, d.failingChecks)
  return d.role === 'stopped' || d.maintenance ? { priority: p.priority, eligible: false } : p
}

export function random(d: Draft): number {
  const r = nextRandom(d.rng)
  d.rng = r.seed
  return r.value
}

const NEW_PEER: PeerView = {
  term: 0,
  effectivePriority: 1,
  eligible: false,
  holder: false,
  config: null,
  heardAt: Number.NEGATIVE_INFINITY,
  disconnected: false,
  releasedTerm: -1,
}

export function updatePeer(d: Draft, id: string, patch: Partial<PeerView>): void {
  if (d.ownedPeers === null) {
    d.ownedPeers = new Map(d.peers)
    d.peers = d.ownedPeers
  }
  const peers = d.ownedPeers
  const prev = peers.get(id) ?? NEW_PEER
  peers.set(id, {
    term: patch.term ?? prev.term,
    effectivePriority: patch.effectivePriority ?? prev.effectivePriority,
    eligible: patch.eligible ?? prev.eligible,
    holder: patch.holder ?? prev.holder,
    config: patch.config !== undefined ? patch.config : prev.config,
    heardAt: patch.heardAt ?? prev.heardAt,
    disconnected: patch.disconnected ?? prev.disconnected,
    releasedTerm: patch.releasedTerm ?? prev.releasedTerm,
  })
}

export function statusMessage(d: Draft): StatusMessage {
  const p = selfPriority(d)
  return {
    kind: 'status',
    term: d.term,
    effectivePriority: p.priority,
    eligible: p.eligible,
    holder: d.role === 'leader',
    leader: d.leader,
    config: configId(d.voters),
  }
}

/**
 * Who needs this node's election frames in `majority` mode: the voters of its configuration (old
 * and new during a joint change) and the MASTER it follows. Undefined (every member) in `none`
 * mode and while the node knows no voters (a joiner must reach whoever can add it).
 */
export function electionAudience(d: Draft): readonly string[] | undefined {
  if (d.opts.config.quorum !== 'majority' || d.voters === null) return undefined
  const ids = new Set(d.voters.voters)
  for (const id of d.voters.prev ?? []) ids.add(id)
  if (d.leader !== null) ids.add(d.leader)
  ids.delete(d.opts.self)
  return [...ids].sort()
}

/** This node's status to everyone who needs it (see electionAudience). */
export function broadcastStatus(d: Draft, out: ElectionAction[]): void {
  const only = electionAudience(d)
  out.push(
    only === undefined
      ? { type: 'broadcast', msg: statusMessage(d) }
      : { type: 'broadcast', msg: statusMessage(d), only },
  )
}

/** A peer counts as present while its status keeps arriving (two status intervals plus a renewal). */
export function isFresh(d: Draft, p: PeerView, now: number): boolean {
  const c = d.opts.config
  return !p.disconnected && now - p.heardAt <= 2 * c.statusIntervalMs + c.heartbeatIntervalMs
}

/**
 * Present, eligible peers that outrank (`priority`, `id`) and could win an election: voters whose
 * voter configuration is at least `minConfig` (default: ours), or they would be refused votes.
 * In `none` mode every peer may win.
 */
export function betterPeers(
  d: Draft,
  now: number,
  priority: number,
  id: string,
  exclude: ReadonlySet<string>,
  minConfig: VoterConfigId | null = configId(d.voters),
): string[] {
  const out: string[] = []
  const majorityMode = d.opts.config.quorum === 'majority'
  for (const [pid, p] of d.peers) {
    if (pid === id || exclude.has(pid) || !p.eligible || !isFresh(d, p, now)) continue
    if (!outranks(p.effectivePriority, pid, priority, id)) continue
    if (majorityMode && (!isVoter(d.voters, pid) || compareConfigIds(p.config, minConfig) < 0)) continue
    out.push(pid)
  }
  return out
}

/** Random election timeout, later for every better-placed peer so the highest priority runs first. */
export function electionDelay(d: Draft, now: number, exclude: ReadonlySet<string>): number {
  const c = d.opts.config
  const self = selfPriority(d)
  const rank = betterPeers(d, now, self.priority, d.opts.self, exclude).length
  return (
    c.electionTimeoutMinMs +
    random(d) * (c.electionTimeoutMaxMs - c.electionTimeoutMinMs) +
    rank * c.rankStaggerMs
  )
}

/** Delay for a fast election (the holder is gone or released): just the rank stagger and a little jitter. */
export function fastElectionDelay(d: Draft, now: number, exclude: ReadonlySet<string>): number {
  const c = d.opts.config
  const self = selfPriority(d)
  const rank = betterPeers(d, now, self.priority, d.opts.self, exclude).length
  return rank * c.rankStaggerMs + (random(d) * c.rankStaggerMs) / 2
}

export const noExclusions: ReadonlySet<string> = new Set()
