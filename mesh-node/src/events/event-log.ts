import { DEFAULT_EVENT_CAPACITY, ViewEventLog } from '@pgmesh/control-api'
import type { BackendsView, ClusterEvent, ClusterStatus, EventsView } from '@pgmesh/protocol'

export { DEFAULT_EVENT_CAPACITY }

export interface NodeEventLogOptions {
  /** the node id, shown as the events' source */
  readonly nodeId: string
  /** events kept (oldest dropped first); default DEFAULT_EVENT_CAPACITY */
  readonly capacity?: number
  /** each event as it is logged, e.g. to the node log */
  readonly onEvent?: (event: ClusterEvent) => void
}

/**
 * The node's cluster event log: a bounded ring of typed events (MASTER changes with their cause,
 * primary changes, config versions, members joining and leaving, maintenance), made by diffing
 * the node's successive views. The pure parts (diff, ring) live in @pgmesh/control-api because
 * the control plane builds its timeline from aggregated views the same way.
 *
 * Wiring: call `observe(status, backends)` whenever the node's view changes (a heartbeat in or
 * out, an election or routing change, a config apply); serve `events(since)` as the
 * ClusterSource `events` capability. Its times are the views' `generatedAt`: no clock here.
 */
export class NodeEventLog {
  readonly #log: ViewEventLog
  readonly #onEvent: ((event: ClusterEvent) => void) | undefined

  constructor(options: NodeEventLogOptions) {
    this.#log = new ViewEventLog(options.nodeId, options.capacity ?? DEFAULT_EVENT_CAPACITY)
    this.#onEvent = options.onEvent
  }

  observe(status: ClusterStatus, backends?: BackendsView): readonly ClusterEvent[] {
    const added = this.#log.observe(status, backends)
    if (this.#onEvent !== undefined) for (const e of added) this.#onEvent(e)
    return added
  }

  events(since?: number): EventsView {
    return this.#log.events(since)
  }
}
