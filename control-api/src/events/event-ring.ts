import type { ClusterEvent, ClusterEventBody, EventsView } from '@pgmesh/protocol'

/** How many events a log keeps by default: minutes of a busy failover test, hours of a calm cluster. */
export const DEFAULT_EVENT_CAPACITY = 500

/** A bounded log of cluster events, numbered from 1; the oldest fall off when it is full. */
export class EventRing {
  readonly #capacity: number
  readonly #events: ClusterEvent[] = []
  #lastSeq = 0

  constructor(capacity = DEFAULT_EVENT_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError('capacity must be a positive integer')
    this.#capacity = capacity
  }

  get lastSeq(): number {
    return this.#lastSeq
  }

  append(bodies: readonly ClusterEventBody[]): ClusterEvent[] {
    const added = bodies.map((b) => ({ ...b, seq: ++this.#lastSeq }) as ClusterEvent)
    this.#events.push(...added)
    if (this.#events.length > this.#capacity) this.#events.splice(0, this.#events.length - this.#capacity)
    return added
  }

  /** Events after `since` (all kept ones without it), oldest first. */
  since(source: string, since = 0): EventsView {
    const first = this.#events[0]?.seq ?? this.#lastSeq + 1
    return {
      source,
      events: this.#events.filter((e) => e.seq > since),
      lastSeq: this.#lastSeq,
      truncated: first > since + 1,
    }
  }
}
