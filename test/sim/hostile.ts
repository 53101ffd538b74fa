import {
  type ElectionMessage,
  ElectionMessageSchema,
  MAX_TERM_JUMP,
  type VoterConfig,
} from '@pgmesh/protocol'
import type { ClusterSim, SimNode } from './cluster-sim.js'
import type { Prng } from './prng.js'

/**
 * A buggy or hostile member holding the cluster secret, but no voter: it is not in the member list
 * the nodes' membership layer reports, so no MASTER adds it. Node id ↔ peer id pinning happens in
 * the node, so every frame it sends arrives under its own id, whatever the frame claims; it reaches
 * every running node (partitions do not cut it off) and sees every frame the nodes send. It also
 * plays the network replaying a node's genuine frame late, from that node.
 *
 * A hostile VOTER is out of scope: a voter that votes twice in one term can make two majorities
 * meet only in itself, which no majority protocol survives.
 */
export const HOSTILE_ID = 'mallory'

const HUGE = Number.MAX_SAFE_INTEGER

export type HostileKind =
  | 'hugeTermResponse'
  | 'grantFromNonVoter'
  | 'ackFromNonVoter'
  | 'forgedRenewal'
  | 'voteRequest'
  | 'release'
  | 'status'
  | 'replayAsSelf'
  | 'replayLate'

const KINDS: readonly HostileKind[] = [
  'hugeTermResponse',
  'grantFromNonVoter',
  'ackFromNonVoter',
  'forgedRenewal',
  'voteRequest',
  'release',
  'status',
  'replayAsSelf',
  'replayLate',
]

function term(rng: Prng, t: number): number {
  return Math.min(HUGE, rng.pick([t + 1, t + 2, t + MAX_TERM_JUMP, t + MAX_TERM_JUMP + 1, HUGE]))
}

function forgedConfig(rng: Prng, voters: VoterConfig | null, t: number): VoterConfig {
  const real = voters?.voters ?? []
  const named = rng.chance(0.3) ? [HOSTILE_ID] : [...new Set([...real, HOSTILE_ID])].sort()
  return {
    term: Math.min(HUGE, t + rng.int(0, 1)),
    version: Math.min(HUGE, (voters?.version ?? 0) + rng.pick([1, 2, 5, MAX_TERM_JUMP + 1, HUGE])),
    voters: named,
    prev: null,
  }
}

/** One frame aimed at `target`, chosen with full knowledge of its state (the strongest adversary). */
function frame(rng: Prng, sim: ClusterSim, target: SimNode, kind: HostileKind): ElectionMessage | null {
  const s = target.state
  if (s === null) return null
  const t = s.term
  const local = sim.local(target)
  const config = s.voters === null ? null : { term: s.voters.term, version: s.voters.version }
  const ids = [...sim.nodes.keys()]
  switch (kind) {
    case 'hugeTermResponse':
      return rng.chance(0.5)
        ? { kind: 'voteResponse', preVote: rng.chance(0.3), term: term(rng, t), granted: false, sentAt: 0 }
        : {
            kind: 'leaseAck',
            term: term(rng, t),
            sentAt: local,
            ok: false,
            effectivePriority: 254,
            eligible: true,
            config,
          }
    case 'grantFromNonVoter': {
      const round = s.round
      return {
        kind: 'voteResponse',
        preVote: round?.preVote ?? false,
        term: round?.term ?? t,
        granted: true,
        sentAt: round?.sentAt ?? local,
        promiseMs: 3_600_000,
      }
    }
    case 'ackFromNonVoter':
      return {
        kind: 'leaseAck',
        term: t,
        sentAt: local,
        ok: true,
        promiseMs: 3_600_000,
        effectivePriority: 254,
        eligible: true,
        config,
      }
    case 'forgedRenewal': {
      const at = Math.min(HUGE, rng.chance(0.5) ? t + 1 : term(rng, t))
      return {
        kind: 'lease',
        term: at,
        sentAt: local,
        effectivePriority: 254,
        eligible: true,
        config: forgedConfig(rng, s.voters, at),
      }
    }
    case 'voteRequest':
      return {
        kind: 'voteRequest',
        preVote: rng.chance(0.5),
        term: term(rng, t),
        sentAt: local,
        effectivePriority: 254,
        eligible: true,
        config: rng.chance(0.5)
          ? { term: t, version: s.voters?.version ?? 0 }
          : { term: term(rng, t), version: HUGE },
      }
    case 'release':
      return { kind: 'release', term: term(rng, t), successor: rng.chance(0.5) ? rng.pick(ids) : null }
    case 'status':
      return {
        kind: 'status',
        term: term(rng, t),
        effectivePriority: 254,
        eligible: true,
        holder: rng.chance(0.7),
        leader: rng.chance(0.5) ? rng.pick(ids) : HOSTILE_ID,
        config: rng.chance(0.5) ? config : { term: term(rng, t), version: HUGE },
      }
    case 'replayAsSelf':
    case 'replayLate':
      return null
  }
}

/** Schedules `count` hostile frames over the next `windowMs`, each to one running node. */
export function scheduleHostile(sim: ClusterSim, rng: Prng, windowMs: number, count: number): void {
  const start = sim.now
  sim.setHostile(true)
  for (let i = 0; i < count; i++) {
    sim.at(start + rng.range(0, windowMs), () => {
      const targets = [...sim.nodes.values()].filter((n) => n.status === 'running')
      if (targets.length === 0) return
      const target = rng.pick(targets)
      const kind = rng.pick(KINDS)
      if (kind === 'replayAsSelf' || kind === 'replayLate') {
        const heard = sim.overheard
        const old = heard.length === 0 ? undefined : heard[rng.int(0, heard.length - 1)]
        if (old === undefined) return
        const from = kind === 'replayAsSelf' ? HOSTILE_ID : old.from
        sim.inject(target.id, from, old.msg, rng.range(0, 2 * sim.config.leaseMs))
        return
      }
      const msg = frame(rng, sim, target, kind)
      if (msg === null) return
      // only what the real decoder accepts reaches the election (a target whose own term is already
      // out of bounds makes some frames unencodable: the simulator reports that node)
      const parsed = ElectionMessageSchema.safeParse(msg)
      if (parsed.success) sim.inject(target.id, HOSTILE_ID, parsed.data, rng.range(0, 5))
    })
  }
  sim.at(start + windowMs, () => sim.setHostile(false))
}
