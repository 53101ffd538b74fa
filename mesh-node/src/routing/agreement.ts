/**
 * Which database node is the primary, as the cluster agrees from every pgmesh node's latest
 * observations. Pure: the caller passes the observations it holds (its own and the gossiped ones)
 * and the clock.
 *
 * Rules (DESIGN.md, "Database primary agreement"):
 * - only fresh observations count (taken within `freshMs`);
 * - a database node is primary when a majority of the observers with a fresh view of it say it
 *   accepts writes (the database's own answer, not Patroni's), and those observers are a majority
 *   of all observers;
 * - two candidates: the higher timeline wins; equal timelines: no primary (in doubt, no writes);
 * - replicas: nodes a majority sees reachable and in recovery, with their worst reported lag;
 * - up: nodes a majority sees reachable that are neither (role unknown: tcp-only checks).
 */

export interface DbView {
  /** the database answered and is not in recovery */
  readonly writable: boolean
  /** the node answered (a probe of any kind) */
  readonly reachable: boolean
  /** the database or Patroni says it is a replica */
  readonly inRecovery: boolean
  readonly timeline: number | null
  /** replication lag in bytes, when the node is a replica and it is known */
  readonly lagBytes: number | null
}

export interface Observation {
  /** the pgmesh node that observed */
  readonly observer: string
  readonly db: string
  /** when it was observed, on the receiver's monotonic clock */
  readonly at: number
  readonly view: DbView
}

export interface Agreement {
  readonly primary: string | null
  readonly primaryTimeline: number | null
  readonly replicas: readonly { readonly db: string; readonly lagBytes: number | null }[]
  readonly up: readonly string[]
  /** why there is no primary, or which conflict was resolved */
  readonly notes: readonly string[]
}

export function agreePrimary(
  observations: readonly Observation[],
  observers: readonly string[],
  now: number,
  freshMs: number,
): Agreement {
  const notes: string[] = []
  const fresh = observations.filter((o) => now - o.at <= freshMs && observers.includes(o.observer))
  const quorum = Math.floor(observers.length / 2) + 1
  const byDb = new Map<string, Observation[]>()
  for (const o of fresh) {
    const list = byDb.get(o.db) ?? []
    list.push(o)
    byDb.set(o.db, list)
  }
  const claims: { db: string; timeline: number }[] = []
  const replicas: { db: string; lagBytes: number | null }[] = []
  const up: string[] = []
  for (const [db, list] of [...byDb].sort(([a], [b]) => a.localeCompare(b))) {
    if (list.length < quorum) {
      notes.push(`${db}: only ${list.length} fresh observation(s), ${quorum} needed`)
      continue
    }
    const writable = list.filter((o) => o.view.writable)
    if (writable.length >= quorum) {
      claims.push({ db, timeline: Math.max(...writable.map((o) => o.view.timeline ?? 0)) })
      continue
    }
    const inRecovery = list.filter((o) => o.view.reachable && o.view.inRecovery)
    if (inRecovery.length >= quorum) {
      const lags = inRecovery.map((o) => o.view.lagBytes)
      replicas.push({ db, lagBytes: lags.some((l) => l === null) ? null : Math.max(...(lags as number[])) })
    } else if (list.filter((o) => o.view.reachable).length >= quorum) {
      up.push(db)
    }
  }
  if (claims.length === 0) {
    if (byDb.size > 0) notes.push('no database node is seen writable by a majority')
    return { primary: null, primaryTimeline: null, replicas, up, notes }
  }
  claims.sort((a, b) => b.timeline - a.timeline)
  const [best, second] = claims
  if (second !== undefined && second.timeline === best!.timeline) {
    notes.push(`${best!.db} and ${second.db} both accept writes on timeline ${best!.timeline}: no primary`)
    return { primary: null, primaryTimeline: null, replicas, up, notes }
  }
  if (second !== undefined) {
    notes.push(
      `${claims
        .slice(1)
        .map((c) => `${c.db} (timeline ${c.timeline})`)
        .join(', ')} also accept(s) writes; ${best!.db} on timeline ${best!.timeline} wins`,
    )
  }
  return { primary: best!.db, primaryTimeline: best!.timeline, replicas, up, notes }
}
