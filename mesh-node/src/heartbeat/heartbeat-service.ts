import type { ClusterConfig } from '@pgmesh/protocol'
import { cancelAll } from '../core/clock.js'
import type { Clock, HeartbeatContributor, Reconfigurable, Startable, Timer } from '../core/contracts.js'
import type { GossipBus } from '../gossip/gossip-bus.js'

/**
 * Extra heartbeats asked for within this window are coalesced, so a burst of changes (a cluster
 * starting, a MASTER change with its VIP and routing updates) sends one.
 */
export const HEARTBEAT_COALESCE_MS = 50

export interface HeartbeatServiceDeps {
  readonly clock: Clock
  readonly bus: Pick<GossipBus, 'publish'>
  readonly intervalMs: () => number
  /** the fields every heartbeat has, from the node's identity and addresses */
  readonly base: () => { priority: number; addrs: string[]; api: string | null }
  readonly contributors: readonly HeartbeatContributor[]
}

/** The node's heartbeat: on the configured interval, plus one "soon" after a change. */
export class HeartbeatService implements Startable, Reconfigurable {
  readonly name = 'heartbeat'
  readonly #d: HeartbeatServiceDeps
  readonly #timers: Timer[] = []
  #soon: Timer | null = null
  #seq = 0
  #running = false

  constructor(d: HeartbeatServiceDeps) {
    this.#d = d
  }

  start(): void {
    this.#running = true
    this.#schedule()
    this.send()
  }

  stop(): void {
    this.#running = false
    cancelAll(this.#timers)
    this.#soon?.cancel()
    this.#soon = null
  }

  reconfigure(next: ClusterConfig, prev: ClusterConfig): void {
    if (next.membership.heartbeatIntervalMs !== prev.membership.heartbeatIntervalMs && this.#running) {
      this.#schedule()
    }
  }

  /** A heartbeat within the coalescing window. */
  soon(): void {
    if (!this.#running || this.#soon !== null) return
    this.#soon = this.#d.clock.after(HEARTBEAT_COALESCE_MS, () => {
      this.#soon = null
      this.send()
    })
  }

  send(): void {
    if (!this.#running) return
    const now = this.#d.clock.mono()
    const fields = {}
    for (const c of this.#d.contributors) Object.assign(fields, c.heartbeatFields(now))
    void this.#d.bus.publish({
      kind: 'heartbeat',
      seq: ++this.#seq,
      configVersion: 0,
      ...this.#d.base(),
      ...fields,
    })
  }

  #schedule(): void {
    cancelAll(this.#timers)
    this.#timers.push(this.#d.clock.every(this.#d.intervalMs(), () => this.send()))
  }
}
