import type { BackendsView, ClusterEvent, ClusterStatus, EventsView } from '@pgmesh/protocol'
import { DEFAULT_EVENT_CAPACITY, EventRing } from './event-ring.js'
import { diffViews, snapshotOf, type ViewSnapshot } from './view-diff.js'

/**
 * An event log fed with whole views: each `observe` diffs the view against the previous one and
 * logs what changed, so a status change needs one call. The first view is the baseline.
 */
export class ViewEventLog {
  readonly #ring: EventRing
  readonly #source: string
  #last: ViewSnapshot | null = null
  #lastMaster: string | null = null

  constructor(source: string, capacity = DEFAULT_EVENT_CAPACITY) {
    this.#source = source
    this.#ring = new EventRing(capacity)
  }

  /** Diffs this view against the last one; returns the events it logged. */
  observe(status: ClusterStatus, backends?: BackendsView): ClusterEvent[] {
    return this.observeSnapshot(snapshotOf(status, backends))
  }

  observeSnapshot(next: ViewSnapshot): ClusterEvent[] {
    const bodies = diffViews(this.#last, next, this.#lastMaster)
    this.#last = next
    if (next.master !== null) this.#lastMaster = next.master
    return this.#ring.append(bodies)
  }

  /** `GET /v1/events?since=` */
  events(since?: number): EventsView {
    return this.#ring.since(this.#source, since)
  }
}
