import type {
  AggregateView,
  Agreement,
  BackendsView,
  ClusterStatus,
  MemberState,
  MemberView,
  NodeReach,
  PgmeshError,
} from '@pgmesh/protocol'

/** What one configured node answered in one fan-out. */
export type NodeView =
  | {
      readonly url: string
      readonly ok: true
      readonly status: ClusterStatus
      readonly backends: BackendsView | null
      readonly latencyMs: number
    }
  | { readonly url: string; readonly ok: false; readonly error: PgmeshError }

export interface AggregatedView {
  readonly status: ClusterStatus
  readonly backends: BackendsView
}

/** Counts the distinct answers; one is agreed only when more than half of all configured nodes gave it. */
export function agreement(
  reports: readonly { node: string; value: string | null }[],
  total: number,
): Agreement {
  const by = new Map<string | null, string[]>()
  for (const r of reports) by.set(r.value, [...(by.get(r.value) ?? []), r.node])
  const answers = [...by.entries()]
    .map(([value, nodes]) => ({ value, nodes }))
    .sort((a, b) => b.nodes.length - a.nodes.length || String(a.value).localeCompare(String(b.value)))
  const top = answers[0]
  const agreed = top !== undefined && top.nodes.length * 2 > total ? top.value : null
  return { agreed, answers }
}

function describeSplit(what: string, a: Agreement): string | null {
  if (a.answers.length <= 1) return null
  const parts = a.answers.map((x) => `${x.value ?? 'none'} (${x.nodes.join(', ')})`)
  return `${what}: ${parts.join(' vs ')}`
}

function holderOf(s: ClusterStatus): string | null {
  const h = [...s.election.vipHolders].sort()
  return h.length === 0 ? null : h.join('+')
}

const EMPTY_COUNTS: Record<MemberState, number> = { alive: 0, suspect: 0, dead: 0, left: 0 }

/** When no node answers: a status with nobody in it, so the page and the API still say so. */
function emptyStatus(name: string, version: string, now: string): ClusterStatus {
  return {
    cluster: 'unknown',
    version,
    self: name,
    generatedAt: now,
    members: [],
    counts: { ...EMPTY_COUNTS },
    gossip: { connectedPeers: 0, topicPeers: 0, messagesIn: 0, messagesOut: 0, dropped: {} },
    election: {
      quorum: 'majority',
      state: 'STOP',
      role: 'control-plane',
      term: 0,
      master: null,
      vipHolders: [],
      vip: { address: null, driver: 'none', held: false },
      leaseRemainingMs: null,
      priority: 0,
      effectivePriority: 0,
      eligible: false,
      failingChecks: [],
      checks: [],
      voters: null,
      masterChanges: 0,
    },
    listeners: [],
    removed: [],
  }
}

/**
 * One cluster view from every node's own: the MASTER and VIP holder as a majority of the
 * configured nodes report them (disagreements listed), the members, config and databases from
 * one base node (the agreed MASTER when it answered, else the answering node with the newest
 * config), and every node's listeners (named `node/listener`). Pure.
 */
export function aggregate(
  views: readonly NodeView[],
  opts: { readonly name: string; readonly version: string; readonly now: string },
): AggregatedView {
  const live = views.filter((v): v is Extract<NodeView, { ok: true }> => v.ok)
  const total = views.length
  const master = agreement(
    live.map((v) => ({ node: v.status.self, value: v.status.election.master })),
    total,
  )
  const vipHolder = agreement(
    live.map((v) => ({ node: v.status.self, value: holderOf(v.status) })),
    total,
  )
  const configs = agreement(
    live.map((v) => ({
      node: v.status.self,
      value: v.status.config === undefined ? null : String(v.status.config.version),
    })),
    total,
  )
  const primaries = agreement(
    live
      .filter((v) => v.backends !== null)
      .map((v) => ({ node: v.status.self, value: v.backends?.agreed.primary ?? null })),
    total,
  )
  const base =
    live.find((v) => v.status.self === master.agreed) ??
    [...live].sort((a, b) => (b.status.config?.version ?? -1) - (a.status.config?.version ?? -1))[0]

  const nodes: NodeReach[] = views.map((v) =>
    v.ok
      ? {
          url: v.url,
          id: v.status.self,
          reachable: true,
          error: null,
          latencyMs: v.latencyMs,
          state: v.status.election.state,
          master: v.status.election.master,
          vipHolders: v.status.election.vipHolders,
          term: v.status.election.term,
          configVersion: v.status.config?.version ?? null,
          primary: v.backends?.agreed.primary ?? null,
        }
      : {
          url: v.url,
          id: null,
          reachable: false,
          error: { code: v.error.code, message: v.error.message },
          latencyMs: null,
          state: null,
          master: null,
          vipHolders: [],
          term: null,
          configVersion: null,
          primary: null,
        },
  )
  const disagreements = [
    describeSplit('MASTER', master),
    describeSplit('VIP holder', vipHolder),
    describeSplit('config version', configs),
    describeSplit('primary', primaries),
  ].filter((d): d is string => d !== null)
  const agg: AggregateView = {
    source: opts.name,
    base: base?.status.self ?? null,
    nodes,
    reachable: live.length,
    total,
    master,
    vipHolder,
    disagreements,
  }

  if (base === undefined) {
    const status = { ...emptyStatus(opts.name, opts.version, opts.now), aggregate: agg }
    const backends: BackendsView = {
      node: opts.name,
      agreed: { primary: null, primaryTimeline: null, replicas: [], up: [], notes: ['no node answered'] },
      databases: [],
    }
    return { status, backends }
  }

  const b = base.status
  const members: MemberView[] = b.members.map((m) => ({ ...m, self: false }))
  const counts = { ...EMPTY_COUNTS }
  for (const m of members) counts[m.state]++
  const sum = (f: (s: ClusterStatus) => number) => live.reduce((n, v) => n + f(v.status), 0)
  const dropped: Record<string, number> = {}
  for (const v of live) {
    for (const [code, n] of Object.entries(v.status.gossip.dropped)) dropped[code] = (dropped[code] ?? 0) + n
  }
  const holders =
    vipHolder.agreed === null
      ? [...new Set(live.flatMap((v) => v.status.election.vipHolders))].sort()
      : vipHolder.agreed.split('+')
  const status: ClusterStatus = {
    ...b,
    self: opts.name,
    generatedAt: opts.now,
    members,
    counts,
    gossip: {
      connectedPeers: sum((s) => s.gossip.connectedPeers),
      topicPeers: sum((s) => s.gossip.topicPeers),
      messagesIn: sum((s) => s.gossip.messagesIn),
      messagesOut: sum((s) => s.gossip.messagesOut),
      dropped,
    },
    election: {
      ...b.election,
      master: master.agreed,
      vipHolders: holders,
      term: Math.max(...live.map((v) => v.status.election.term)),
      masterChanges: Math.max(...live.map((v) => v.status.election.masterChanges)),
    },
    listeners: live.flatMap((v) =>
      v.status.listeners.map((l) => ({ ...l, name: `${v.status.self}/${l.name}` })),
    ),
    aggregate: agg,
  }
  const backends: BackendsView =
    base.backends === null
      ? {
          node: opts.name,
          agreed: {
            primary: null,
            primaryTimeline: null,
            replicas: [],
            up: [],
            notes: [`${b.self} did not serve its databases view`],
          },
          databases: [],
        }
      : {
          ...base.backends,
          agreed: {
            ...base.backends.agreed,
            notes: [
              ...base.backends.agreed.notes,
              ...(primaries.answers.length > 1 ? [describeSplit('primary', primaries) ?? ''] : []),
            ],
          },
        }
  return { status, backends }
}
