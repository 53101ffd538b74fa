/**
 * Backend selection, pure: the listener passes the candidates that may take a connection now
 * (routable, below maxconn) and gets one back, or null when none can.
 */

export const BALANCE_ALGORITHMS = ['roundrobin', 'leastconn', 'source', 'first', 'random'] as const
export type BalanceAlgorithm = (typeof BALANCE_ALGORITHMS)[number]

export interface Candidate {
  readonly id: string
  /** relative share of connections (1–256); 0 = drained, only used when nothing else is left */
  readonly weight: number
  /** connections open to it now */
  readonly active: number
}

export interface BalancerState {
  /** smooth weighted round robin: current weights by backend id */
  readonly current: Map<string, number>
}

export function newBalancerState(): BalancerState {
  return { current: new Map() }
}

/**
 * Picks a backend. `clientKey` is the client's address (for `source`); `random` is a source of
 * numbers in [0, 1) (for `random`: the better of two random picks, by active connections per weight).
 */
export function pickBackend(
  algorithm: BalanceAlgorithm,
  candidates: readonly Candidate[],
  state: BalancerState,
  clientKey: string,
  random: () => number = Math.random,
): Candidate | null {
  const weighted = candidates.filter((c) => c.weight > 0)
  const pool = weighted.length > 0 ? weighted : candidates
  if (pool.length === 0) return null
  switch (algorithm) {
    case 'first':
      return pool[0]!
    case 'leastconn':
      return pool.reduce((best, c) => (load(c) < load(best) ? c : best))
    case 'source':
      return pool[hash(clientKey) % pool.length]!
    case 'random': {
      const a = pool[Math.floor(random() * pool.length)]!
      const b = pool[Math.floor(random() * pool.length)]!
      return load(b) < load(a) ? b : a
    }
    case 'roundrobin':
      return smoothWeightedRoundRobin(pool, state)
  }
}

/** Connections per unit of weight: what leastconn and the two-choice pick compare. */
function load(c: Candidate): number {
  return c.active / Math.max(1, c.weight)
}

/** nginx's smooth weighted round robin: even spreading, weights respected over each cycle. */
function smoothWeightedRoundRobin(pool: readonly Candidate[], state: BalancerState): Candidate {
  let total = 0
  let best: Candidate | null = null
  let bestWeight = Number.NEGATIVE_INFINITY
  for (const c of pool) {
    const w = Math.max(1, c.weight)
    const cur = (state.current.get(c.id) ?? 0) + w
    state.current.set(c.id, cur)
    total += w
    if (cur > bestWeight) {
      bestWeight = cur
      best = c
    }
  }
  const chosen = best ?? pool[0]!
  state.current.set(chosen.id, bestWeight - total)
  return chosen
}

/** FNV-1a: a stable hash, so a client address maps to the same backend while the pool is unchanged. */
function hash(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}
