import {
  type BackendsView,
  type ClusterConfig,
  formatHostPort,
  type Heartbeat,
  type ListenerConfig,
} from '@pgmesh/protocol'
import { canonicalJson } from '../config-sync/config-hash.js'
import type {
  Changes,
  Clock,
  HeartbeatContributor,
  HeartbeatFields,
  Reconfigurable,
  Startable,
  Timer,
} from '../core/contracts.js'
import { DatabaseMonitor, type DbState, type DbStatus } from '../database/database-monitor.js'
import type { Logger } from '../log.js'
import type { BackendTarget } from '../proxy/tcp-listener.js'
import type { DbView } from './agreement.js'
import { Router } from './router.js'

/** What routing needs of the proxy: close sessions that lost their reason, wake queued clients. */
export interface SessionControl {
  cut(why: (listener: ListenerConfig, backend: string) => string | null): number
  kickAll(): void
}

export interface RoutingServiceDeps {
  readonly self: string
  readonly cluster: () => ClusterConfig
  readonly clock: Clock
  readonly logger: Logger
  readonly changes: Changes
  readonly sessions: SessionControl
  /** who may observe the databases now: self and the members heard from recently */
  readonly observers: () => readonly string[]
  /** every finished probe round (metrics) */
  readonly onProbeRound?: (status: DbStatus) => void
}

/**
 * Where connections go: this node's checks of every database node, the peers' gossiped views,
 * the agreement over both, the backends each listener may use now, and the policy that cuts
 * sessions whose backend stopped being what their listener routes to.
 */
export class RoutingService implements Startable, Reconfigurable, HeartbeatContributor {
  readonly name = 'routing'
  readonly #d: RoutingServiceDeps
  readonly #log: Logger
  #router: Router
  #monitor: DatabaseMonitor
  #timer: Timer | null = null
  #running = false
  #startError: string | null = null

  constructor(d: RoutingServiceDeps) {
    this.#d = d
    this.#log = d.logger.child({ component: 'routing' })
    ;[this.#router, this.#monitor] = this.#build(d.cluster())
  }

  /** why the database checks could not start (e.g. an unreadable password file), else null */
  get startError(): string | null {
    return this.#startError
  }

  /**
   * Starts the database checks. A stored config that cannot start them (its password file is
   * missing here) must not make the node unable to start: it runs without database checks (no
   * routing), says why in `/ready`, and takes the next version that works.
   */
  async start(): Promise<void> {
    try {
      await this.#monitor.start()
    } catch (e) {
      this.#startError = e instanceof Error ? e.message : String(e)
      this.#log.error(
        { code: 'CONFIG_APPLY_FAILED', err: this.#startError },
        'the database checks cannot start with this config; running without routing until a config that works arrives',
      )
    }
    this.#running = true
    this.#schedule(this.#d.cluster())
  }

  stop(): void {
    this.#running = false
    this.#timer?.cancel()
    this.#timer = null
    this.#monitor.stop()
  }

  /**
   * A databases edit: a new monitor and router that keep what the old ones knew of the database
   * nodes still listed (this node's confirmed states, the peers' views). The old monitor stops
   * only once the new one started (an unreadable password file keeps the old one running).
   */
  async reconfigure(next: ClusterConfig, prev: ClusterConfig): Promise<void> {
    const same =
      canonicalJson(next.databases) === canonicalJson(prev.databases) &&
      canonicalJson(next.databaseChecks) === canonicalJson(prev.databaseChecks)
    if (same || !this.#running) return
    const [router, monitor] = this.#build(next)
    router.carryOver(this.#router)
    monitor.carryOver(this.#monitor)
    await monitor.start()
    this.#monitor.stop()
    this.#startError = null
    this.#router = router
    this.#monitor = monitor
    this.#schedule(next)
    this.reroute()
  }

  /** The backends a listener may send a new connection to now (ProxyService's routing). */
  candidates(listener: ListenerConfig): BackendTarget[] {
    return this.#router.candidates(listener, (db) => this.#monitor.status(db)?.state)
  }

  statuses(): DbStatus[] {
    return this.#monitor.statuses()
  }

  /** A member's gossiped database views. */
  observe(node: string, databases: NonNullable<Heartbeat['databases']>, at: number): void {
    this.#router.observe(node, databases, at)
  }

  heartbeatFields(now: number): HeartbeatFields {
    if (this.#d.cluster().databases.length === 0) return {}
    return {
      databases: this.#monitor.statuses().map((d) => ({
        name: d.name,
        state: d.state,
        timeline: d.timeline,
        lagBytes: d.lagBytes,
        ageMs: Number.isFinite(d.at) ? Math.max(0, Math.round(now - d.at)) : 600_000,
      })),
    }
  }

  /**
   * Recomputes the agreed roles; when they change, queued clients are served and sessions to a
   * backend that stopped being what their listener routes to are closed: for write listeners, a
   * backend this node's own confirmed check no longer sees writable, or one the cluster agrees is
   * not the primary any more (another one is); for the others, a backend confirmed down.
   */
  reroute(): void {
    if (this.#d.cluster().databases.length === 0) return
    const now = this.#d.clock.mono()
    this.#router.local(this.#monitor.statuses())
    const { agreement, changed } = this.#router.recompute(this.#d.observers(), now)
    if (changed) {
      this.#log[agreement.primary === null ? 'warn' : 'info'](
        {
          primary: agreement.primary,
          timeline: agreement.primaryTimeline,
          replicas: agreement.replicas,
          notes: agreement.notes,
        },
        agreement.primary === null ? 'no agreed primary' : `agreed primary: ${agreement.primary}`,
      )
      this.#d.changes.emit('routing')
    }
    this.#d.sessions.cut((listener, backend) => {
      const own = this.#monitor.status(backend)?.state
      if (listener.role === 'primary') {
        if (own !== 'primary')
          return `${backend} is no longer primary by this node's checks (${own ?? 'unknown'})`
        if (agreement.primary !== null && agreement.primary !== backend) {
          return `the cluster agrees ${agreement.primary} is the primary`
        }
        return null
      }
      if (listener.role !== 'servers' && own === 'down') return `${backend} is down`
      return null
    })
    this.#d.sessions.kickAll()
  }

  /** `GET /v1/backends` */
  backends(): BackendsView {
    const now = this.#d.clock.mono()
    const a = this.#router.agreement
    const views = this.#router.views()
    return {
      node: this.#d.self,
      agreed: { ...a, replicas: [...a.replicas], up: [...a.up], notes: [...a.notes] },
      databases: this.#d.cluster().databases.map((d) => {
        const s = this.#monitor.status(d.name)
        const fresh = s !== undefined && Number.isFinite(s.at)
        return {
          name: d.name,
          address: formatHostPort(d.address),
          local: {
            state: s?.state ?? 'down',
            timeline: s?.timeline ?? null,
            lagBytes: s?.lagBytes ?? null,
            ageMs: fresh ? Math.round(now - s.at) : null,
            probeMs: s?.probeMs ?? null,
            postgres: s?.postgres ?? null,
            patroni: s?.patroni ?? null,
            tcp: s?.tcp ?? null,
          },
          observers: [...views]
            .flatMap(([node, m]) => {
              const o = m.get(d.name)
              return o === undefined
                ? []
                : [
                    {
                      node,
                      state: viewState(o.view),
                      timeline: o.view.timeline,
                      ageMs: Math.max(0, Math.round(now - o.at)),
                    },
                  ]
            })
            .sort((x, y) => x.node.localeCompare(y.node)),
        }
      }),
    }
  }

  #build(c: ClusterConfig): [Router, DatabaseMonitor] {
    const router = new Router(this.#d.self, c.databases, c.databaseChecks.freshMs)
    const monitor = new DatabaseMonitor(
      c.databases,
      c.databaseChecks,
      this.#d.logger,
      () => this.reroute(),
      () => this.#d.clock.mono(),
      (status) => this.#d.onProbeRound?.(status),
    )
    return [router, monitor]
  }

  #schedule(c: ClusterConfig): void {
    this.#timer?.cancel()
    this.#timer =
      c.databases.length > 0 ? this.#d.clock.every(c.databaseChecks.intervalMs, () => this.reroute()) : null
  }
}

function viewState(v: DbView): DbState {
  if (v.writable) return 'primary'
  if (!v.reachable) return 'down'
  return v.inRecovery ? 'replica' : 'up'
}
