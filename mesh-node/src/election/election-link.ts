import {
  type ClusterConfig,
  decodeElectionFrame,
  type ElectionMessage,
  encodeElectionFrame,
  type VipConfig,
  type VoterConfigId,
} from '@pgmesh/protocol'
import type { TrackedChecks } from '../checks/tracked-checks.js'
import { canonicalJson } from '../config-sync/config-hash.js'
import type {
  Changes,
  Clock,
  HeartbeatContributor,
  HeartbeatFields,
  Reconfigurable,
  Startable,
} from '../core/contracts.js'
import type { GossipBus } from '../gossip/gossip-bus.js'
import type { MeshTransport } from '../gossip/transport.js'
import type { Logger } from '../log.js'
import type { MembershipState } from '../membership/membership.js'
import type { PeerDirectory } from '../membership/peer-directory.js'
import type { VipDriver } from '../vip/vip-driver.js'
import { ElectionDriver, type ElectionDriverDeps } from './election-driver.js'
import type { ElectionStore } from './election-store.js'
import type { ElectionOptions } from './types.js'

export interface ElectionLinkDeps {
  readonly self: string
  readonly priority: number
  /** whether this node starts without --join (a seed founds the cluster alone) */
  readonly founding: boolean
  readonly cluster: () => ClusterConfig
  readonly clock: Clock
  readonly logger: Logger
  readonly changes: Changes
  readonly transport: MeshTransport
  readonly directory: PeerDirectory
  readonly bus: Pick<GossipBus, 'drop'>
  readonly membership: () => MembershipState
  readonly checks: TrackedChecks
  readonly store: ElectionStore
  readonly vip: VipDriver
  readonly random?: () => number
  /** told every lease change after the VIP driver (the proxy's lease gate) */
  readonly leaseObservers?: ElectionDriverDeps['leaseObservers']
}

/**
 * Joins the election driver to the mesh: frames in and out over the direct channel (by node id,
 * through the peer directory), the voter list kept in step with membership, connection events as
 * fast failure hints, check results and config edits as election events, and the election's part
 * of every heartbeat.
 */
export class ElectionLink implements Startable, Reconfigurable, HeartbeatContributor {
  readonly name = 'election'
  readonly driver: ElectionDriver
  readonly #d: ElectionLinkDeps
  readonly #log: Logger
  #membersKey = ''
  #optionsKey: string

  constructor(d: ElectionLinkDeps) {
    this.#d = d
    this.#log = d.logger.child({ component: 'election' })
    const cluster = d.cluster()
    const options = this.#options(cluster)
    this.#optionsKey = optionsKey(options, cluster.vip)
    const founders = cluster.members.map((m) => m.id)
    this.driver = new ElectionDriver({
      options,
      // listed founders, else the seed (a node started without --join) founds the cluster alone
      // and the MASTER adds every node that joins
      initialVoters: founders.length > 0 ? founders : d.founding ? [d.self] : null,
      store: d.store,
      vip: d.vip,
      vipConfig: cluster.vip,
      send: (to, msg) => this.#send(to, msg),
      broadcast: (msg, only) => this.#broadcast(msg, only),
      now: () => d.clock.mono(),
      after: (ms, fn) => d.clock.after(ms, fn),
      logger: d.logger,
      onChange: () => d.changes.emit('election'),
      ...(d.leaseObservers === undefined ? {} : { leaseObservers: d.leaseObservers }),
    })
  }

  async start(): Promise<void> {
    this.#warnAboutQuorum()
    const seed = Math.floor((this.#d.random ?? Math.random)() * 0x7fffffff)
    await this.driver.start(this.#d.checks.failing(), seed)
    this.syncMembers()
  }

  stop(): Promise<void> {
    return this.driver.stop()
  }

  reconfigure(next: ClusterConfig, prev: ClusterConfig): void {
    if (canonicalJson(next.members) !== canonicalJson(prev.members)) this.syncMembers()
    this.#reconfigureOptions()
  }

  restartOnly(started: ClusterConfig, now: ClusterConfig): readonly string[] {
    return started.election.quorum === now.election.quorum ? [] : ['election.quorum']
  }

  heartbeatFields(): HeartbeatFields {
    const election = this.driver.summary([...this.#d.checks.failing()])
    return election === undefined ? {} : { election }
  }

  /** A tracked check changed; a check added live starts counting with this first result. */
  checkChanged(name: string, passing: boolean): void {
    this.#reconfigureOptions()
    this.driver.deliver({ type: 'check', name, passing })
    this.#d.changes.emit('checks')
  }

  frame(peerId: string, data: Uint8Array): void {
    const from = this.#d.directory.nodeOf(peerId)
    if (from === undefined) {
      // election traffic before the peer's first heartbeat (start-up): it will repeat
      this.#d.bus.drop(
        'GOSSIP_UNKNOWN_PEER',
        peerId,
        'election frame from a peer not yet known by heartbeat',
        'debug',
      )
      return
    }
    const r = decodeElectionFrame(data)
    if (!r.ok) {
      this.#d.bus.drop(r.error.code, peerId, `dropped election frame: ${r.error.message}`, 'warn')
      return
    }
    this.driver.deliver({ type: 'message', from, msg: r.value })
  }

  /** A member's heartbeat named its voter configuration (a witness; see the `report` event). */
  reported(node: string, config: VoterConfigId | null): void {
    if (node !== this.#d.self) this.driver.deliver({ type: 'report', from: node, config })
  }

  peerConnected(peerId: string): void {
    if (this.#d.directory.nodeOf(peerId) !== undefined) this.driver.peerReconnected()
  }

  peerDisconnected(peerId: string): void {
    const id = this.#d.directory.nodeOf(peerId)
    if (id !== undefined) this.driver.deliver({ type: 'peerDisconnected', id })
  }

  /**
   * The election's member list: self, the founding members, and every member that has not left
   * (dead ones still count) and that no operator removed. A founding member not heard from yet is
   * still a member: dropping it from the voters because its first heartbeat is late would shrink
   * the quorum behind its back.
   */
  syncMembers(): void {
    const m = this.#d.membership()
    const ids = new Set([this.#d.self])
    for (const f of this.#d.cluster().members) {
      if (m.members.get(f.id)?.state !== 'left' && !m.removed.has(f.id)) ids.add(f.id)
    }
    for (const [id, rec] of m.members) if (rec.state !== 'left') ids.add(id)
    const sorted = [...ids].sort()
    const key = sorted.join(',')
    if (key === this.#membersKey) return
    this.#membersKey = key
    this.driver.deliver({ type: 'members', ids: sorted })
  }

  #options(c: ClusterConfig): ElectionOptions {
    return {
      self: this.#d.self,
      priority: this.#d.priority,
      checks: this.#d.checks.weighted(),
      config: c.election,
    }
  }

  /** Gives the election the running config's checks and timings, when they changed. */
  #reconfigureOptions(): void {
    const c = this.#d.cluster()
    const options = this.#options(c)
    const key = optionsKey(options, c.vip)
    if (key === this.#optionsKey) return
    this.#optionsKey = key
    this.driver.reconfigure(options, c.vip)
  }

  #send(to: string, msg: ElectionMessage): void {
    const peer = this.#d.directory.peerOf(to)
    if (peer !== undefined) this.#d.transport.sendDirect(peer, encodeElectionFrame(msg))
  }

  #broadcast(msg: ElectionMessage, only: readonly string[] | undefined): void {
    const frame = encodeElectionFrame(msg)
    if (only === undefined) {
      for (const p of this.#d.directory.known()) this.#d.transport.sendDirect(p.peerId, frame)
      return
    }
    for (const id of only) {
      const peer = this.#d.directory.peerOf(id)
      if (peer !== undefined) this.#d.transport.sendDirect(peer, frame)
    }
  }

  #warnAboutQuorum(): void {
    const { election, members } = this.#d.cluster()
    if (election.quorum === 'none') {
      this.#log.warn(
        'election quorum is "none" (Keepalived behaviour): under a network partition both sides hold the VIP (split brain). Use it only for 2-node pairs.',
      )
    } else if (members.length === 2) {
      this.#log.warn(
        'a 2-member cluster with quorum "majority" cannot elect a MASTER while either member is down; add a third member or set quorum "none"',
      )
    }
  }
}

function optionsKey(o: ElectionOptions, vip: VipConfig): string {
  return canonicalJson({ checks: o.checks, election: o.config, vip })
}
