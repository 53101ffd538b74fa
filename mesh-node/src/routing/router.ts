import type { DatabaseConfig, ListenerConfig } from '@pgmesh/protocol'
import type { DbState, DbStatus } from '../database/database-monitor.js'
import type { BackendTarget } from '../proxy/tcp-listener.js'
import { type Agreement, agreePrimary, type Observation } from './agreement.js'

export interface GossipedDbView {
  readonly name: string
  readonly state: DbState
  readonly timeline: number | null
  readonly lagBytes: number | null
  readonly ageMs: number
}

const NO_AGREEMENT: Agreement = { primary: null, primaryTimeline: null, replicas: [], up: [], notes: [] }

/**
 * Every node's latest view of every database node (its own from the monitor, the others' from
 * heartbeats), the agreement over them, and the backends each listener may use now.
 */
export class Router {
  /** observer → database → observation */
  readonly #views = new Map<string, Map<string, Observation>>()
  #agreement: Agreement = NO_AGREEMENT
  readonly #byName: Map<string, DatabaseConfig>

  constructor(
    private readonly self: string,
    databases: readonly DatabaseConfig[],
    private readonly freshMs: number,
  ) {
    this.#byName = new Map(databases.map((d) => [d.name, d]))
  }

  get agreement(): Agreement {
    return this.#agreement
  }

  /** Records a peer's gossiped views, dated on our clock. */
  observe(observer: string, views: readonly GossipedDbView[], receivedAt: number): void {
    const m = new Map<string, Observation>()
    for (const v of views) {
      if (!this.#byName.has(v.name)) continue
      m.set(v.name, {
        observer,
        db: v.name,
        at: receivedAt - v.ageMs,
        view: {
          writable: v.state === 'primary',
          reachable: v.state !== 'down',
          inRecovery: v.state === 'replica',
          timeline: v.timeline,
          lagBytes: v.lagBytes,
        },
      })
    }
    this.#views.set(observer, m)
  }

  local(statuses: readonly DbStatus[]): void {
    this.observe(
      this.self,
      statuses.map((s) => ({
        name: s.name,
        state: s.state,
        timeline: s.timeline,
        lagBytes: s.lagBytes,
        ageMs: 0,
      })),
      0,
    )
    // own observations carry their real probe time
    const own = this.#views.get(this.self)!
    for (const s of statuses) {
      const o = own.get(s.name)
      if (o !== undefined) own.set(s.name, { ...o, at: s.at })
    }
  }

  forget(observer: string): void {
    this.#views.delete(observer)
  }

  /** Recomputes the agreement among `observers` (alive members and self); returns it and whether it changed. */
  recompute(observers: readonly string[], now: number): { agreement: Agreement; changed: boolean } {
    const all = [...this.#views.values()].flatMap((m) => [...m.values()])
    const next = agreePrimary(all, observers, now, this.freshMs)
    const prev = this.#agreement
    const changed =
      next.primary !== prev.primary ||
      next.replicas.map((r) => r.db).join() !== prev.replicas.map((r) => r.db).join() ||
      next.up.join() !== prev.up.join()
    this.#agreement = next
    return { agreement: next, changed }
  }

  /**
   * Backends a listener may open a new connection to. A write goes only where the cluster agrees
   * on the primary AND this node's own latest check says it accepts writes.
   */
  candidates(listener: ListenerConfig, ownState: (db: string) => DbState | undefined): BackendTarget[] {
    const a = this.#agreement
    const target = (name: string): BackendTarget[] => {
      const d = this.#byName.get(name)
      return d === undefined
        ? []
        : [{ id: d.name, host: d.address.host, port: d.address.port, weight: d.weight, maxconn: d.maxconn }]
    }
    const primary = a.primary !== null && ownState(a.primary) === 'primary' ? target(a.primary) : []
    const replicas = a.replicas
      .filter((r) => ownState(r.db) === 'replica')
      .filter(
        (r) =>
          listener.replicaMaxLagBytes === undefined ||
          (r.lagBytes !== null && r.lagBytes <= listener.replicaMaxLagBytes),
      )
      .flatMap((r) => target(r.db))
    const up = a.up.filter((db) => ownState(db) !== undefined && ownState(db) !== 'down').flatMap(target)
    switch (listener.role) {
      case 'primary':
        return primary
      case 'replica':
        return replicas.length > 0 ? replicas : primary
      case 'any':
        return [...primary, ...replicas, ...up]
      case 'servers':
        return []
    }
  }

  /** Takes over another router's observations of the database nodes this one also routes to. */
  carryOver(old: Router): void {
    for (const [observer, m] of old.#views) {
      const kept = new Map([...m].filter(([db]) => this.#byName.has(db)))
      if (kept.size > 0) this.#views.set(observer, kept)
    }
  }

  views(): ReadonlyMap<string, ReadonlyMap<string, Observation>> {
    return this.#views
  }
}
