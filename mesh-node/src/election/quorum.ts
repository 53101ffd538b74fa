import type { VoterConfig, VoterConfigId } from '@pgmesh/protocol'

export const majority = (size: number): number => Math.floor(size / 2) + 1

/** A joint configuration (`prev` set) needs a majority of both the new and the old voters. */
export function hasQuorum(config: VoterConfig, ids: ReadonlySet<string>): boolean {
  return hasMajority(config.voters, ids) && (config.prev === null || hasMajority(config.prev, ids))
}

function hasMajority(set: readonly string[], ids: ReadonlySet<string>): boolean {
  let count = 0
  for (const id of set) if (ids.has(id)) count++
  return count >= majority(set.length)
}

export function isVoter(config: VoterConfig | null, id: string): boolean {
  return config?.voters.includes(id) ?? false
}

export function configId(config: VoterConfig | null): VoterConfigId | null {
  return config === null ? null : { term: config.term, version: config.version }
}

/** Orders configurations like Raft orders logs: by the term that created them, then by version. */
export function compareConfigIds(a: VoterConfigId | null, b: VoterConfigId | null): number {
  if (a === null || b === null) return (a === null ? 0 : 1) - (b === null ? 0 : 1)
  return a.term !== b.term ? a.term - b.term : a.version - b.version
}

/**
 * The MASTER's lease deadline on its own clock. `acks` maps each voter to the end of its latest
 * promise on the MASTER's clock: the acknowledged renewal's send time plus the promise length the
 * voter reported (it backs no one else for that long of its own clock from when it received the
 * renewal, i.e. from no earlier than the send time). The quorum-th latest end bounds the lease;
 * `driftMs` covers a voter clock that measures the promise faster than ours. The MASTER itself
 * counts as always promising.
 */
export function leaseDeadline(
  config: VoterConfig,
  acks: ReadonlyMap<string, number>,
  self: string,
  driftMs: number,
): number {
  const t =
    config.prev === null
      ? quorumAckTime(config.voters, acks, self)
      : Math.min(quorumAckTime(config.voters, acks, self), quorumAckTime(config.prev, acks, self))
  return t - driftMs
}

/** The time until which a majority of `set` has promised (the majority-th latest promise end). */
function quorumAckTime(set: readonly string[], acks: ReadonlyMap<string, number>, self: string): number {
  const times: number[] = []
  for (const id of set) {
    times.push(id === self ? Number.POSITIVE_INFINITY : (acks.get(id) ?? Number.NEGATIVE_INFINITY))
  }
  times.sort(descending)
  return times[majority(set.length) - 1] ?? Number.NEGATIVE_INFINITY
}

function descending(a: number, b: number): number {
  return b - a
}

export function sameMembers(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false
  for (const id of a) if (!b.includes(id)) return false
  return true
}
