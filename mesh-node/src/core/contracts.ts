/**
 * The contracts every part of a node implements or is given. Types only: this module sits at the
 * bottom of the import graph, so any part may depend on it and on nothing else of the node's.
 */
import type { ClusterConfig, Heartbeat } from '@pgmesh/protocol'

/** A scheduled callback; `cancel()` is idempotent. */
export interface Timer {
  cancel(): void
}

/**
 * Time for every part: monotonic milliseconds for durations and deadlines, wall-clock milliseconds
 * for display only, and timers on the monotonic scale. A fake clock (testing/fake-clock.ts) drives
 * a whole node in virtual time.
 */
export interface Clock {
  mono(): number
  wall(): number
  after(ms: number, fn: () => void): Timer
  every(ms: number, fn: () => void): Timer
  /** resolves after `ms`; rejects with the signal's reason when it aborts first */
  sleep(ms: number, signal?: AbortSignal): Promise<void>
}

/** A part with a lifecycle; the composition root calls these in its ordered start and stop lists. */
export interface Startable {
  start(): Promise<void> | void
  stop(): Promise<void> | void
}

/**
 * A part that follows the cluster config live. `reconfigure` applies `next` over `prev`; when it
 * throws, the applier gives every part that already applied `next` the previous config back, so
 * a node never runs half of a version.
 */
export interface Reconfigurable {
  readonly name: string
  reconfigure(next: ClusterConfig, prev: ClusterConfig): Promise<void> | void
  /** what of `started` → `now` this part can only take at the next start (shown as pendingRestart) */
  restartOnly?(started: ClusterConfig, now: ClusterConfig): readonly string[]
}

/** The heartbeat fields a part owns. */
export type HeartbeatFields = Partial<
  Pick<
    Heartbeat,
    'election' | 'databases' | 'maintenance' | 'removed' | 'peers' | 'policy' | 'configVersion' | 'configHash'
  >
>

/** A part that adds its own fields to every heartbeat. */
export interface HeartbeatContributor {
  heartbeatFields(now: number): HeartbeatFields
}

/**
 * What changed in a way peers should hear about soon (the heartbeat service sends one within its
 * coalescing window) or a view should recompute.
 */
export type ChangeKind = 'peer' | 'members' | 'election' | 'routing' | 'config' | 'maintenance' | 'checks'

export type ChangeListener = (kind: ChangeKind) => void

export interface Changes {
  emit(kind: ChangeKind): void
  on(listener: ChangeListener): () => void
}
