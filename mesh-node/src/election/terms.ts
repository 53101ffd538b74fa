import { MAX_TERM_JUMP, type VoterConfig } from '@pgmesh/protocol'
import { compareConfigIds, configId, hasQuorum, isVoter } from './quorum.js'
import type { Draft } from './types.js'

/**
 * Which terms and voter configurations from peers a node takes on. Terms are the election's only
 * counter that peers can push up; one frame from a member that is not a voter, or a value far ahead,
 * must never depose a MASTER or be persisted (a term near 2^53 would overflow at the next
 * election, and no peer would accept the node's frames again).
 */

/** Raft's rule: a higher term is adopted, and the vote given in the old one no longer binds. */
export function adoptTerm(d: Draft, term: number): void {
  if (term > d.term) {
    d.term = term
    d.votedFor = null
  }
}

/** No further ahead of ours than MAX_TERM_JUMP. */
export function withinJump(ours: number, theirs: number): boolean {
  return theirs - ours <= MAX_TERM_JUMP
}

/** A voter of our configuration (its old voters too, during a joint change). */
export function isOurVoter(d: Draft, id: string): boolean {
  return isVoter(d.voters, id) || (d.voters?.prev?.includes(id) ?? false)
}

/**
 * Whether a higher `term` from `from` may move ours: it comes from a voter of our configuration
 * (or from anyone while we have none yet: a joining node learns from whoever leads), and it is
 * within MAX_TERM_JUMP.
 */
export function mayAdoptTerm(d: Draft, from: string, term: number): boolean {
  if (term <= d.term) return true
  return withinJump(d.term, term) && (d.voters === null || isOurVoter(d, from))
}

/**
 * Whether a voter configuration a MASTER sent replaces ours: it is newer, it was made no later than
 * the term it comes with, and its version is within MAX_TERM_JUMP of ours (versions grow by one or
 * two per member change). From a sender that is not one of our voters (a follower that missed a
 * change hears a MASTER it does not know as a voter; a joining node knows no voters yet) it also
 * takes witnesses: a majority of our voters (a joining node: of the configuration's own voters,
 * the sender included) reporting that configuration or a newer one. Nobody can forge what the
 * others report, while anyone holding the secret can forge a configuration naming itself. (A
 * joining node still believes a configuration whose only voter is its sender: a cluster founded by
 * one node has just that, and the joiner has no voters of its own to ask.)
 */
export function mayAdoptConfig(d: Draft, from: string, config: VoterConfig, term: number): boolean {
  if (compareConfigIds(configId(config), configId(d.voters)) <= 0 || config.term > term) return false
  if (!withinJump(d.voters?.version ?? 0, config.version)) return false
  return isOurVoter(d, from) || witnessed(d, from, config)
}

function witnessed(d: Draft, from: string, config: VoterConfig): boolean {
  const id = configId(config)
  const seen = new Set<string>([from])
  for (const [pid, p] of d.peers) if (compareConfigIds(p.config, id) >= 0) seen.add(pid)
  return hasQuorum(d.voters ?? config, seen)
}
