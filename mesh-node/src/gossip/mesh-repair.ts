import { type ClusterConfig, formatHostPort, type HostPort } from '@pgmesh/protocol'
import { canonicalJson } from '../config-sync/config-hash.js'
import { cancelAll } from '../core/clock.js'
import type { Clock, Reconfigurable, Startable, Timer } from '../core/contracts.js'
import type { Logger } from '../log.js'
import { type MembershipState, redialTargets, unconnectedMembers } from '../membership/membership.js'
import type { KnownPeer } from '../membership/peer-directory.js'
import { runJoinLoop } from './join-loop.js'
import type { MeshTransport } from './transport.js'

export interface MeshRepairDeps {
  readonly clock: Clock
  readonly logger: Logger
  readonly transport: MeshTransport
  readonly seeds: readonly HostPort[]
  readonly joinRetry: { readonly initialMs: number; readonly maxMs: number; readonly dialTimeoutMs: number }
  readonly membership: () => MembershipState
  /** every peer this node has pinned, persisted across restarts: where to rejoin when seeds are gone */
  readonly knownPeers: () => readonly KnownPeer[]
  readonly timings: () => { suspectTimeoutMs: number; subscribeGraceMs: number }
  readonly onJoined: () => void
  /** saves what should survive a crash (the peer pins and addresses); called every repair round */
  readonly persist?: () => Promise<void>
}

/**
 * Keeps this node in the mesh: the join loop through the seeds, redials of silent members at their
 * last addresses, hang-ups of connections whose gossip never started, and — with no connection at
 * all — dials of every peer it has ever pinned, so the death of every seed strands nobody.
 */
export class MeshRepair implements Startable, Reconfigurable {
  readonly name = 'mesh-repair'
  readonly #d: MeshRepairDeps
  readonly #log: Logger
  readonly #timers: Timer[] = []
  #running: AbortController | null = null
  #joinLoop: Promise<void> = Promise.resolve()
  #joined = false

  constructor(d: MeshRepairDeps) {
    this.#d = d
    this.#log = d.logger.child({ component: 'join' })
  }

  start(): void {
    const running = new AbortController()
    this.#running = running
    this.#schedule()
    const { transport, seeds, joinRetry, clock } = this.#d
    this.#joinLoop = runJoinLoop(
      {
        seeds,
        ...joinRetry,
        dialSeed: (seed, signal) => transport.dialSeed(seed, signal),
        isConnected: (p) => transport.isConnected(p),
        onJoined: (seed, peerId) => {
          if (!this.#joined) this.#log.info({ seed: formatHostPort(seed), peer: peerId }, 'joined the mesh')
          this.#joined = true
          this.#d.onJoined()
        },
        log: this.#log,
        sleep: (ms, signal) => clock.sleep(ms, signal),
      },
      running.signal,
    )
  }

  async stop(): Promise<void> {
    cancelAll(this.#timers)
    this.#running?.abort()
    this.#running = null
    await this.#joinLoop
  }

  reconfigure(next: ClusterConfig, prev: ClusterConfig): void {
    if (next.membership.suspectTimeoutMs !== prev.membership.suspectTimeoutMs && this.#running !== null) {
      this.#schedule()
    }
  }

  restartOnly(started: ClusterConfig, now: ClusterConfig): readonly string[] {
    // libp2p's settings are fixed when it starts
    return canonicalJson(started.gossip) === canonicalJson(now.gossip) ? [] : ['gossip']
  }

  /**
   * A member's heartbeat (or a digest) named where it listens: connect if we are not yet.
   */
  discovered(peerId: string, addrs: readonly string[]): void {
    const t = this.#d.transport
    if (this.#running === null || t.isConnected(peerId)) return
    // the transport keeps one attempt in flight per peer and stops at maxPeers connections
    t.dialDiscovered(peerId, addrs, this.#running.signal)
  }

  /**
   * A connection can outlive the path under it: after a partition TCP may sit in retransmission
   * backoff for many seconds, and gossipsub never retries a failed stream set-up. A member silent
   * for `suspectTimeoutMs` while "connected" is hung up, and silent members are redialled at
   * their last known addresses, so the mesh heals as soon as the network does.
   */
  async repair(): Promise<void> {
    const running = this.#running
    const t = this.#d.transport
    if (running === null || !t.started) return
    // a bounded list of confirmed silent members: invented ids cannot make us dial where they say
    for (const rec of redialTargets(this.#d.membership())) {
      if (t.isConnected(rec.peerId)) {
        this.#log.info(
          { member: rec.id, peer: rec.peerId },
          `hanging up silent member ${rec.id} to redial it`,
        )
        await t.hangUp(rec.peerId)
      }
      t.dialDiscovered(rec.peerId, rec.addrs, running.signal)
    }
    // alive members reached only through others: their dial when they came alive failed
    for (const rec of unconnectedMembers(this.#d.membership(), (p) => t.isConnected(p))) {
      t.dialDiscovered(rec.peerId, rec.addrs, running.signal)
    }
    if (t.connectedPeers().length === 0) {
      for (const p of this.#d.knownPeers()) t.dialDiscovered(p.peerId, p.addrs, running.signal)
    }
    const silent = await t.hangUpSilentPeers(this.#d.timings().subscribeGraceMs)
    if (silent.length > 0) this.#log.info({ peers: silent }, 'hung up peers whose gossip never started')
    await this.#d.persist?.()
  }

  #schedule(): void {
    cancelAll(this.#timers)
    this.#timers.push(
      this.#d.clock.every(this.#d.timings().suspectTimeoutMs, () => {
        this.repair().catch((e: unknown) =>
          this.#log.warn({ err: (e as Error).message }, 'mesh repair failed'),
        )
      }),
    )
  }
}
