import type { MetricsText } from '@pgmesh/control-api'
import { type ClusterStatus, DB_STATES, MEMBER_STATES } from '@pgmesh/protocol'
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client'
import { classify, type DbStatus } from '../database/database-monitor.js'
import type { VipCounts } from './vip-counter.js'

const VIP_STATES = ['MASTER', 'BACKUP', 'FAULT', 'STOP'] as const

/** What the metrics read; every value comes from a snapshot the node already keeps. */
export interface MetricsSources {
  readonly info: { readonly node: string; readonly cluster: string; readonly version: string }
  status(): ClusterStatus
  /** this node holds an unexpired VIP lease now */
  isMaster(): boolean
  databases(): readonly DbStatus[]
  vip(): VipCounts
  /**
   * the certificates this node's TLS listeners serve, with their notAfter (Unix ms); absent or
   * empty: no pgmesh_tls_certificate_expiry_seconds series
   */
  certificates?(): readonly { readonly listener: string; readonly notAfterMs: number }[]
  /** register prom-client's process and Node.js runtime metrics (RSS, CPU, event loop lag) */
  readonly defaultMetrics?: boolean
}

interface Snapshot {
  readonly status: ClusterStatus
  readonly master: boolean
  readonly vip: VipCounts
  readonly databases: readonly DbStatus[]
  readonly certificates: readonly { readonly listener: string; readonly notAfterMs: number }[]
}

type LabelValues<L extends string> = Partial<Record<L, string | number>>
type Emit<L extends string> = (labels: LabelValues<L>, value: number) => void
type Fill<L extends string> = (s: Snapshot, emit: Emit<L>) => void

/** how often the event loop's delay histogram (`nodejs_eventloop_lag_*`) samples, ms */
export const EVENT_LOOP_SAMPLE_MS = 100

/**
 * The node's Prometheus registry. Nothing is pushed from the hot paths: at scrape time each
 * metric's collect() copies its values from one snapshot of the node (taken once per scrape).
 * Counters are rebuilt from the node's absolute counts, so a series whose listener or backend
 * is gone disappears instead of freezing.
 */
export class NodeMetrics {
  readonly registry = new Registry()
  readonly #s: MetricsSources
  #cached: Snapshot | null = null
  /** database → probe result → rounds */
  readonly #checks = new Map<string, Map<string, number>>()

  constructor(sources: MetricsSources) {
    this.#s = sources
    // prom-client samples the event loop's delay every 10 ms by default: 100 wake-ups a second, the
    // largest part of an idle node's CPU. 100 ms still catches every stall that matters to a lease
    if (sources.defaultMetrics === true)
      collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS })
    this.#defineAll()
  }

  /** Counts one database probe round by what it saw (before rise/fall); DatabaseMonitor calls it. */
  countCheckRound(d: DbStatus): void {
    const result = classify(d)
    let byResult = this.#checks.get(d.name)
    if (byResult === undefined) {
      byResult = new Map()
      this.#checks.set(d.name, byResult)
    }
    byResult.set(result, (byResult.get(result) ?? 0) + 1)
  }

  async render(): Promise<MetricsText> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() }
  }

  #snapshot(): Snapshot {
    if (this.#cached !== null) return this.#cached
    const snap: Snapshot = {
      status: this.#s.status(),
      master: this.#s.isMaster(),
      vip: this.#s.vip(),
      databases: this.#s.databases(),
      certificates: this.#s.certificates?.() ?? [],
    }
    // Registry.metrics() runs every collect() in one synchronous pass: one snapshot serves them all
    this.#cached = snap
    setImmediate(() => {
      this.#cached = null
    })
    return snap
  }

  #counter<L extends string>(name: string, help: string, labelNames: readonly L[], fill: Fill<L>): void {
    const c: Counter<L> = new Counter<L>({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect: () => {
        c.reset()
        fill(this.#snapshot(), (labels, v) => c.inc(labels, v))
      },
    })
  }

  #gauge<L extends string>(name: string, help: string, labelNames: readonly L[], fill: Fill<L>): void {
    const g: Gauge<L> = new Gauge<L>({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect: () => {
        g.reset()
        fill(this.#snapshot(), (labels, v) => g.set(labels, v))
      },
    })
  }

  #metric<L extends string>(
    type: 'counter' | 'gauge',
    name: string,
    help: string,
    labelNames: readonly L[],
    fill: Fill<L>,
  ): void {
    if (type === 'counter') this.#counter(name, help, labelNames, fill)
    else this.#gauge(name, help, labelNames, fill)
  }

  #defineAll(): void {
    const info = this.#s.info
    this.#gauge(
      'pgmesh_node_info',
      'This node: always 1, labelled with its id, cluster and version',
      ['node', 'cluster', 'version'],
      (_s, emit) => emit(info, 1),
    )

    // membership
    this.#gauge(
      'pgmesh_members',
      'Cluster members this node lists, by state (self included)',
      ['state'],
      (s, emit) => {
        for (const st of MEMBER_STATES) emit({ state: st }, s.status.counts[st])
      },
    )

    // election and VIP
    const e = (s: Snapshot) => s.status.election
    this.#gauge('pgmesh_election_term', 'Current election term on this node', [], (s, emit) =>
      emit({}, e(s).term),
    )
    this.#gauge(
      'pgmesh_master',
      '1 while this node is the MASTER (holds an unexpired VIP lease), else 0',
      [],
      (s, emit) => emit({}, s.master ? 1 : 0),
    )
    this.#gauge(
      'pgmesh_election_state',
      "This node's VRRP-style state: 1 for the current one",
      ['state'],
      (s, emit) => {
        for (const st of VIP_STATES) emit({ state: st }, e(s).state === st ? 1 : 0)
      },
    )
    this.#gauge(
      'pgmesh_maintenance',
      '1 while this node is in maintenance (an operator took it out)',
      [],
      (s, emit) => emit({}, s.status.members.some((m) => m.self && m.maintenance !== null) ? 1 : 0),
    )
    this.#gauge('pgmesh_config_version', 'Version of the cluster config this node runs', [], (s, emit) =>
      emit({}, s.status.config?.version ?? 0),
    )
    this.#gauge(
      'pgmesh_tls_certificate_expiry_seconds',
      'Unix time at which the certificate of a TLS listener expires (its notAfter)',
      ['listener'],
      (s, emit) => {
        for (const c of s.certificates) emit({ listener: c.listener }, Math.floor(c.notAfterMs / 1000))
      },
    )
    this.#gauge(
      'pgmesh_config_conflicts',
      'Cluster config edits this node saw lose to a concurrent one (the newest 10, as GET /v1/config lists them)',
      [],
      (s, emit) => emit({}, s.status.config?.conflicts ?? 0),
    )
    this.#gauge('pgmesh_election_eligible', '1 while no weight-0 tracked check fails', [], (s, emit) =>
      emit({}, e(s).eligible ? 1 : 0),
    )
    this.#gauge('pgmesh_election_effective_priority', 'Priority after tracked-check weights', [], (s, emit) =>
      emit({}, e(s).effectivePriority),
    )
    this.#counter('pgmesh_master_changes_total', 'Times this node became MASTER', [], (s, emit) =>
      emit({}, e(s).masterChanges),
    )
    this.#gauge('pgmesh_vip_held', '1 while the VIP driver says this node holds the VIP', [], (s, emit) =>
      emit({}, e(s).vip.held ? 1 : 0),
    )
    this.#counter(
      'pgmesh_vip_acquires_total',
      'VIP acquisitions (entering MASTER) by result',
      ['result'],
      (s, emit) => {
        emit({ result: 'ok' }, s.vip.acquired)
        emit({ result: 'failed' }, s.vip.acquireFailed)
      },
    )
    this.#counter(
      'pgmesh_vip_releases_total',
      'VIP releases (leaving MASTER) by result',
      ['result'],
      (s, emit) => {
        emit({ result: 'ok' }, s.vip.released)
        emit({ result: 'failed' }, s.vip.releaseFailed)
      },
    )

    // databases
    this.#counter(
      'pgmesh_database_checks_total',
      'Probe rounds against each database node, by what the round saw before rise/fall',
      ['database', 'result'],
      (_s, emit) => {
        for (const [database, byResult] of this.#checks) {
          for (const [result, n] of byResult) emit({ database, result }, n)
        }
      },
    )
    this.#gauge(
      'pgmesh_database_state',
      "Each database node's confirmed state by this node's checks: 1 for the current one",
      ['database', 'state'],
      (s, emit) => {
        for (const d of s.databases)
          for (const st of DB_STATES) emit({ database: d.name, state: st }, d.state === st ? 1 : 0)
      },
    )

    // proxy: listeners, and backends per listener
    type L = ClusterStatus['listeners'][number]
    const perListener = (type: 'counter' | 'gauge', name: string, help: string, value: (l: L) => number) =>
      this.#metric(type, name, help, ['listener'], (s, emit) => {
        for (const l of s.status.listeners) emit({ listener: l.name }, value(l))
      })
    perListener('gauge', 'pgmesh_listener_connections', 'Client connections open now', (l) => l.active)
    perListener('counter', 'pgmesh_listener_connections_total', 'Client connections accepted', (l) => l.total)
    perListener(
      'gauge',
      'pgmesh_listener_queued_connections',
      'Clients waiting for a backend now',
      (l) => l.queued,
    )
    perListener(
      'counter',
      'pgmesh_listener_sessions_cut_total',
      'Sessions closed because their backend stopped qualifying',
      (l) => l.cut,
    )
    this.#counter(
      'pgmesh_listener_connection_errors_total',
      'Client connections that got no session, by reason',
      ['listener', 'reason'],
      (s, emit) => {
        for (const l of s.status.listeners) {
          emit({ listener: l.name, reason: 'refused' }, l.refused)
          emit({ listener: l.name, reason: 'queue_timeout' }, l.queueTimeouts)
          emit({ listener: l.name, reason: 'connect_error' }, l.connectErrors)
        }
      },
    )
    // the PostgreSQL edge: TLS, refusals, bad input, cancels (docs/tls.md)
    this.#counter(
      'pgmesh_listener_edge_events_total',
      'What happened at the PostgreSQL edge of a listener, by event',
      ['listener', 'event'],
      (s, emit) => {
        for (const l of s.status.listeners) {
          const e = l.edge
          if (e === undefined) continue
          emit({ listener: l.name, event: 'tls_session' }, e.tlsSessions)
          emit({ listener: l.name, event: 'tls_failure' }, e.tlsFailures)
          emit({ listener: l.name, event: 'handshake_timeout' }, e.handshakeTimeouts)
          emit({ listener: l.name, event: 'plain_refused' }, e.plainRefused)
          emit({ listener: l.name, event: 'bad_startup' }, e.badStartup)
          emit({ listener: l.name, event: 'cancel_forwarded' }, e.cancelsForwarded)
          emit({ listener: l.name, event: 'cancel_dropped' }, e.cancelsDropped)
          emit({ listener: l.name, event: 'backend_tls_failure' }, e.backendTlsFailures)
        }
      },
    )
    this.#counter(
      'pgmesh_listener_bytes_total',
      'Bytes proxied by sessions that ended; direction in = client to backend, out = backend to client',
      ['listener', 'direction'],
      (s, emit) => {
        for (const l of s.status.listeners) {
          emit(
            { listener: l.name, direction: 'in' },
            l.backends.reduce((n, b) => n + b.bytesIn, 0),
          )
          emit(
            { listener: l.name, direction: 'out' },
            l.backends.reduce((n, b) => n + b.bytesOut, 0),
          )
        }
      },
    )
    // traffic policy: refusals by reason, and the most-limited sources (top-N, never one series per address)
    this.#counter(
      'pgmesh_listener_policy_refused_total',
      'Clients the listener policy refused before any byte reached a backend, by reason',
      ['listener', 'reason'],
      (s, emit) => {
        for (const l of s.status.listeners) {
          if (l.policy === undefined) continue
          for (const [reason, n] of Object.entries(l.policy.refused)) emit({ listener: l.name, reason }, n)
        }
      },
    )
    this.#gauge(
      'pgmesh_listener_limited_source_refusals',
      'Refusals by the per-source limits of the most-limited sources (at most 10 per listener; estimates)',
      ['listener', 'rank', 'source'],
      (s, emit) => {
        for (const l of s.status.listeners) {
          const top = l.policy?.limited ?? []
          for (let i = 0; i < top.length; i++) {
            emit({ listener: l.name, rank: i + 1, source: top[i]!.source }, top[i]!.refused)
          }
        }
      },
    )
    this.#gauge(
      'pgmesh_listener_policy_sources',
      'Sources the listener policy keeps state for: rate buckets (tracked), open connections (connected), sticky entries (sticky)',
      ['listener', 'table'],
      (s, emit) => {
        for (const l of s.status.listeners) {
          const p = l.policy
          if (p === undefined) continue
          emit({ listener: l.name, table: 'tracked' }, p.trackedSources)
          emit({ listener: l.name, table: 'connected' }, p.connectedSources)
          if (p.stick !== null) emit({ listener: l.name, table: 'sticky' }, p.stick.entries)
        }
      },
    )
    type B = L['backends'][number]
    const perBackend = (type: 'counter' | 'gauge', name: string, help: string, value: (b: B) => number) =>
      this.#metric(type, name, help, ['listener', 'backend'], (s, emit) => {
        for (const l of s.status.listeners) {
          for (const b of l.backends) emit({ listener: l.name, backend: b.id }, value(b))
        }
      })
    perBackend('gauge', 'pgmesh_backend_connections', 'Sessions open to the backend now', (b) => b.active)
    perBackend(
      'counter',
      'pgmesh_backend_connections_total',
      'Sessions established to the backend',
      (b) => b.total,
    )
    perBackend(
      'counter',
      'pgmesh_backend_connect_errors_total',
      'Failed connection attempts to the backend',
      (b) => b.connectErrors,
    )
    perBackend(
      'counter',
      'pgmesh_backend_sessions_cut_total',
      'Sessions to the backend closed by a role change',
      (b) => b.cut,
    )
    this.#counter(
      'pgmesh_backend_bytes_total',
      'Bytes proxied by sessions that ended; direction in = client to backend, out = backend to client',
      ['listener', 'backend', 'direction'],
      (s, emit) => {
        for (const l of s.status.listeners) {
          for (const b of l.backends) {
            emit({ listener: l.name, backend: b.id, direction: 'in' }, b.bytesIn)
            emit({ listener: l.name, backend: b.id, direction: 'out' }, b.bytesOut)
          }
        }
      },
    )

    // kernel fast path (`dataPath: kernel` listeners): present only when the node has some
    this.#gauge(
      'pgmesh_fastpath_kernel',
      '1 while the kernel forwards the listener’s new connections, 0 while the Node listener takes them',
      ['listener'],
      (s, emit) => {
        for (const l of s.status.fastPath?.listeners ?? [])
          emit({ listener: l.name }, l.path === 'kernel' ? 1 : 0)
      },
    )
    this.#counter(
      'pgmesh_fastpath_connections_total',
      'New connections the kernel forwarded (its nftables counter; it survives rule updates)',
      ['listener'],
      (s, emit) => {
        for (const l of s.status.fastPath?.listeners ?? []) emit({ listener: l.name }, l.newConnections)
      },
    )
    this.#gauge(
      'pgmesh_fastpath_sessions',
      'Kernel-path sessions established now, per backend (conntrack, read every 5 s)',
      ['listener', 'backend'],
      (s, emit) => {
        for (const l of s.status.fastPath?.listeners ?? []) {
          for (const [backend, n] of Object.entries(l.sessions)) emit({ listener: l.name, backend }, n)
        }
      },
    )
    this.#counter('pgmesh_fastpath_rule_updates_total', 'nftables rule updates applied', [], (s, emit) => {
      if (s.status.fastPath !== undefined) emit({}, s.status.fastPath.updates)
    })
    this.#counter(
      'pgmesh_fastpath_sessions_cut_total',
      'Kernel-path sessions cut (conntrack) because their backend stopped being a valid target',
      [],
      (s, emit) => {
        if (s.status.fastPath !== undefined) emit({}, s.status.fastPath.cuts)
      },
    )

    // gossip
    this.#gauge('pgmesh_gossip_connected_peers', 'Peers with an open connection', [], (s, emit) =>
      emit({}, s.status.gossip.connectedPeers),
    )
    this.#gauge('pgmesh_gossip_topic_peers', 'Connected peers gossip flows with', [], (s, emit) =>
      emit({}, s.status.gossip.topicPeers),
    )
    this.#counter(
      'pgmesh_gossip_messages_total',
      'Gossip messages accepted (in) and published (out)',
      ['direction'],
      (s, emit) => {
        emit({ direction: 'in' }, s.status.gossip.messagesIn)
        emit({ direction: 'out' }, s.status.gossip.messagesOut)
      },
    )
    this.#counter(
      'pgmesh_gossip_dropped_total',
      'Gossip messages and election frames dropped, by reason (an error code from docs/errors.md)',
      ['reason'],
      (s, emit) => {
        for (const [reason, n] of Object.entries(s.status.gossip.dropped)) emit({ reason }, n)
      },
    )
  }
}
