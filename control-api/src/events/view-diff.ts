import type {
  BackendsView,
  ClusterEventBody,
  ClusterStatus,
  MasterChangeCause,
  MemberState,
} from '@pgmesh/protocol'

/** What of a member the timeline follows. */
export interface MemberSnapshot {
  readonly state: MemberState
  readonly effectivePriority: number | null
  /** null until the member's heartbeat carried its election view */
  readonly eligible: boolean | null
  readonly failingChecks: readonly string[]
  readonly maintenance: { readonly reason: string | null } | null
}

/** The part of a node's (or the control plane's) view that events are made of. */
export interface ViewSnapshot {
  /** ISO time of the view: the time its events carry */
  readonly at: string
  readonly master: string | null
  readonly term: number
  /** undefined when the view said nothing about databases (no backends view at hand) */
  readonly primary?: { readonly name: string | null; readonly timeline: number | null }
  readonly config: { readonly version: number; readonly hash: string; readonly origin: string } | null
  readonly members: ReadonlyMap<string, MemberSnapshot>
  readonly removed: ReadonlySet<string>
}

export function snapshotOf(status: ClusterStatus, backends?: BackendsView): ViewSnapshot {
  const members = new Map<string, MemberSnapshot>()
  for (const m of status.members) {
    members.set(m.id, {
      state: m.state,
      effectivePriority: m.election?.effectivePriority ?? null,
      eligible: m.election?.eligible ?? null,
      failingChecks: m.election?.failingChecks ?? [],
      maintenance: m.maintenance === null ? null : { reason: m.maintenance.reason },
    })
  }
  const c = status.config
  return {
    at: status.generatedAt,
    master: status.election.master,
    term: status.election.term,
    ...(backends === undefined
      ? {}
      : { primary: { name: backends.agreed.primary, timeline: backends.agreed.primaryTimeline } }),
    config: c === undefined ? null : { version: c.version, hash: c.hash, origin: c.origin },
    members,
    removed: new Set(status.removed.map((r) => r.id)),
  }
}

function masterCause(
  from: string | null,
  to: string | null,
  prev: ViewSnapshot,
  next: ViewSnapshot,
  lastMaster: string | null,
): { cause: MasterChangeCause; detail: string } {
  if (from === null) {
    const after = lastMaster === null || lastMaster === to ? '' : `; the last MASTER was ${lastMaster}`
    return { cause: 'elected', detail: `${to} won term ${next.term}${after}` }
  }
  const old = next.members.get(from)
  const was = prev.members.get(from)
  const why = (): { cause: MasterChangeCause; detail: string } => {
    if (next.removed.has(from)) return { cause: 'removed', detail: `${from} was removed by an operator` }
    if (old === undefined) return { cause: 'failure', detail: `${from} is gone from the member list` }
    if (old.state === 'suspect' || old.state === 'dead') {
      return { cause: 'failure', detail: `${from} is ${old.state}` }
    }
    if (old.state === 'left') return { cause: 'stopped', detail: `${from} stopped (left the mesh)` }
    if (old.maintenance !== null) {
      const reason = old.maintenance.reason === null ? '' : `: ${old.maintenance.reason}`
      return { cause: 'maintenance', detail: `${from} went into maintenance${reason}` }
    }
    if (
      old.eligible === false ||
      (was !== undefined && old.failingChecks.length > was.failingChecks.length)
    ) {
      const failing = old.failingChecks.length === 0 ? 'its checks' : old.failingChecks.join(', ')
      return { cause: 'checks', detail: `${from} failed ${failing}` }
    }
    const newer = to === null ? undefined : next.members.get(to)
    if (
      newer?.effectivePriority != null &&
      old.effectivePriority !== null &&
      newer.effectivePriority > old.effectivePriority
    ) {
      return {
        cause: 'preempted',
        detail: `${to} (priority ${newer.effectivePriority}) took over from ${from} (${old.effectivePriority})`,
      }
    }
    return { cause: 'unknown', detail: `${from} lost MASTER; the view does not show why` }
  }
  const r = why()
  return to === null
    ? { cause: r.cause === 'unknown' ? 'lost' : r.cause, detail: `no MASTER: ${r.detail}` }
    : r
}

/**
 * The events between two successive views, in a fixed order (members, maintenance, MASTER,
 * primary, config). The first view (`prev` null) is the baseline: no events. Pure, so a node
 * calls it on every status change and the control plane on every aggregated view.
 */
export function diffViews(
  prev: ViewSnapshot | null,
  next: ViewSnapshot,
  /** the MASTER before a gap with none (a kill is often seen as "n1 → none → n2") */
  lastMaster: string | null = null,
): ClusterEventBody[] {
  if (prev === null) return []
  const at = next.at
  const out: ClusterEventBody[] = []
  for (const [id, m] of next.members) {
    const was = prev.members.get(id)
    if (was === undefined) {
      out.push({ at, kind: 'member', member: id, change: 'joined', from: null })
    } else if (was.state !== m.state) {
      out.push({ at, kind: 'member', member: id, change: m.state, from: was.state })
    }
    const inBefore = was?.maintenance != null
    if (inBefore !== (m.maintenance !== null)) {
      out.push({
        at,
        kind: 'maintenance',
        member: id,
        enabled: m.maintenance !== null,
        reason: m.maintenance?.reason ?? null,
      })
    }
  }
  for (const [id, was] of prev.members) {
    if (next.members.has(id)) continue
    const change = next.removed.has(id) ? 'removed' : 'gone'
    out.push({ at, kind: 'member', member: id, change, from: was.state })
  }
  if (prev.master !== next.master) {
    out.push({
      at,
      kind: 'master',
      from: prev.master,
      to: next.master,
      term: next.term,
      ...masterCause(prev.master, next.master, prev, next, lastMaster),
    })
  }
  if (prev.primary !== undefined && next.primary !== undefined && prev.primary.name !== next.primary.name) {
    out.push({
      at,
      kind: 'primary',
      from: prev.primary.name,
      to: next.primary.name,
      timeline: next.primary.timeline,
    })
  }
  if (next.config !== null && (prev.config === null || prev.config.hash !== next.config.hash)) {
    out.push({ at, kind: 'config', ...next.config })
  }
  return out
}
