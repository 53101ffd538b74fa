import type { ClusterConfig, MembershipTimings } from '@pgmesh/protocol'
import { cancelAll } from '../core/clock.js'
import type { Changes, Clock, Reconfigurable, Startable, Timer } from '../core/contracts.js'
import { type Logger, RateLimitedLog } from '../log.js'
import {
  initialMembership,
  type MembershipChange,
  type MembershipEvent,
  type MembershipState,
  membershipStep,
  removalsToGossip,
} from './membership.js'

const CONFLICT_LOG_INTERVAL_MS = 10_000

export interface MembershipServiceDeps {
  readonly self: string
  readonly clock: Clock
  readonly logger: Logger
  readonly changes: Changes
  readonly timings: () => MembershipTimings
}

/**
 * Drives the pure membership step: events in (heartbeats, leaves, disconnects, removals), a
 * failure-detector tick at half the heartbeat interval, every change logged and announced.
 */
export class MembershipService implements Startable, Reconfigurable {
  readonly name = 'membership'
  readonly #d: MembershipServiceDeps
  readonly #log: Logger
  readonly #conflictLog = new RateLimitedLog(CONFLICT_LOG_INTERVAL_MS)
  readonly #timers: Timer[] = []
  #state: MembershipState
  #running = false

  constructor(d: MembershipServiceDeps) {
    this.#d = d
    this.#log = d.logger.child({ component: 'membership' })
    this.#state = initialMembership(d.self)
  }

  get state(): MembershipState {
    return this.#state
  }

  /** Ids of the members heard from recently (and self): who may observe databases and vote. */
  aliveIds(): string[] {
    const ids = [this.#d.self]
    for (const [id, rec] of this.#state.members) if (rec.state === 'alive') ids.push(id)
    return ids
  }

  start(): void {
    this.#running = true
    this.#schedule()
  }

  stop(): void {
    this.#running = false
    cancelAll(this.#timers)
  }

  reconfigure(next: ClusterConfig, prev: ClusterConfig): void {
    const a = next.membership
    const b = prev.membership
    if (a.heartbeatIntervalMs !== b.heartbeatIntervalMs && this.#running) this.#schedule()
  }

  apply(event: MembershipEvent): readonly MembershipChange[] {
    const r = membershipStep(this.#state, event, this.#d.clock.mono(), this.#d.timings())
    this.#state = r.state
    for (const c of r.changes) this.#report(c)
    if (r.changes.length > 0) this.#d.changes.emit('members')
    return r.changes
  }

  /** The operator removals this node relays in its heartbeats. */
  removals(now: number): ReturnType<typeof removalsToGossip> {
    return removalsToGossip(this.#state, now)
  }

  /** A relayed removal names this node: an operator removed it; the others ignore it now. */
  removedSelf(incarnation: number): void {
    const suppressed = this.#conflictLog.shouldLog('removed/self', this.#d.clock.mono())
    if (suppressed !== null) {
      this.#log.error(
        { incarnation, suppressed },
        'an operator removed this node from the cluster: the others ignore it; restart it to rejoin',
      )
    }
  }

  #schedule(): void {
    cancelAll(this.#timers)
    const every = Math.max(10, this.#d.timings().heartbeatIntervalMs / 2)
    this.#timers.push(this.#d.clock.every(every, () => this.apply({ type: 'tick' })))
  }

  #report(c: MembershipChange): void {
    const log = this.#log
    switch (c.type) {
      case 'state':
        log[c.to === 'alive' || c.to === 'left' ? 'info' : 'warn'](
          { member: c.id, from: c.from, to: c.to, incarnation: c.incarnation },
          `member ${c.id} is ${c.to}`,
        )
        break
      case 'removed':
        log.info(
          { member: c.id, reason: c.reason, incarnation: this.#state.removed.get(c.id)?.incarnation },
          c.reason === 'operator'
            ? `member ${c.id} removed by an operator: it no longer counts toward quorum`
            : `member ${c.id} removed`,
        )
        break
      case 'refused': {
        const suppressed = this.#conflictLog.shouldLog(`refused/${c.peerId}`, this.#d.clock.mono())
        if (suppressed !== null) {
          log.warn(
            { member: c.id, peer: c.peerId, reason: c.reason, code: 'GOSSIP_MEMBER_REFUSED', suppressed },
            `member ${c.id} not admitted (${c.reason})`,
          )
        }
        break
      }
      case 'idConflict': {
        const suppressed = this.#conflictLog.shouldLog(`conflict/${c.peerId}`, this.#d.clock.mono())
        if (suppressed !== null) {
          log.error(
            { member: c.id, peer: c.peerId, suppressed },
            `another node uses this node's id '${c.id}'`,
          )
        }
        break
      }
    }
  }
}
