import type { ClusterSource, MetricsText } from '@pgmesh/control-api'
import {
  type BackendsView,
  type ClusterStatus,
  type ConfigView,
  type ElectionView,
  type HealthResponse,
  type MaintenanceView,
  type MasterResponse,
  MEMBER_STATES,
  type MemberView,
  type ReadyResponse,
} from '@pgmesh/protocol'
import type { TrackedChecks } from '../checks/tracked-checks.js'
import type { ConfigApplier } from '../config-sync/config-applier.js'
import type { ConfigService } from '../config-sync/config-service.js'
import type { Clock } from '../core/contracts.js'
import type { ElectionDriver } from '../election/election-driver.js'
import type { FastPathStatus } from '../fastpath/kernel-fastpath.js'
import type { GossipBus } from '../gossip/gossip-bus.js'
import type { MeshTransport } from '../gossip/transport.js'
import { memberViews, removedViews } from '../membership/membership.js'
import type { MembershipService } from '../membership/membership-service.js'
import type { Maintenance } from '../operator/maintenance.js'
import type { ProxyService } from '../proxy/proxy-service.js'
import type { RoutingService } from '../routing/routing-service.js'

export interface NodeViewDeps {
  readonly self: {
    readonly id: string
    readonly priority: number
    readonly incarnation: number
    readonly joins: boolean
  }
  readonly cluster: string
  readonly version: string
  readonly startedAt: number
  readonly clock: Clock
  readonly transport: MeshTransport
  readonly bus: Pick<GossipBus, 'counters'>
  readonly membership: MembershipService
  readonly election: ElectionDriver
  readonly checks: TrackedChecks
  readonly proxy: ProxyService
  readonly routing: RoutingService
  readonly config: ConfigService
  readonly applier: ConfigApplier
  readonly maintenance: Maintenance
  readonly apiAddress: () => string | null
  readonly metrics: () => Promise<MetricsText>
  readonly fastPath: () => FastPathStatus
}

type NodeReads = Required<
  Pick<
    ClusterSource,
    'status' | 'members' | 'health' | 'ready' | 'master' | 'backends' | 'metrics' | 'config' | 'maintenance'
  >
>

/** The node's read-only view, as the control API, the metrics and the CLI read it. Nothing here changes state. */
export class NodeView implements NodeReads {
  readonly #d: NodeViewDeps

  constructor(d: NodeViewDeps) {
    this.#d = d
  }

  members(): MemberView[] {
    const d = this.#d
    const started = d.transport.started
    const stamp = d.config.sync.current.stamp
    return memberViews(
      d.membership.state,
      {
        peerId: started ? d.transport.peerId : '',
        incarnation: d.self.incarnation,
        priority: d.self.priority,
        addrs: started ? d.transport.addresses() : [],
        api: d.apiAddress(),
        configVersion: stamp.version,
        startedAt: d.startedAt,
        election: d.election.summary([...d.checks.failing()]) ?? null,
        maintenance: d.maintenance.state,
      },
      d.clock.mono(),
      d.clock.wall(),
    )
  }

  status(): ClusterStatus {
    const d = this.#d
    const members = this.members()
    const counts = Object.fromEntries(MEMBER_STATES.map((s) => [s, 0])) as Record<MemberView['state'], number>
    for (const m of members) counts[m.state]++
    const stamp = d.config.sync.current.stamp
    const error = d.applier.error
    const started = d.transport.started
    return {
      cluster: d.cluster,
      version: d.version,
      self: d.self.id,
      generatedAt: new Date(d.clock.wall()).toISOString(),
      members,
      counts,
      gossip: this.#gossip(started),
      election: this.electionView(members),
      listeners: d.proxy.status(),
      config: {
        version: stamp.version,
        hash: stamp.hash,
        origin: stamp.origin,
        pendingRestart: d.applier.pendingRestart(),
        conflicts: d.config.sync.conflicts().length,
        applied: d.applier.runningVersion,
        ...(error === undefined ? {} : { applyError: { ...error } }),
      },
      removed: removedViews(d.membership.state, d.clock.mono(), d.clock.wall()),
      ...this.#fastPath(),
    }
  }

  #fastPath(): Pick<ClusterStatus, 'fastPath'> {
    const f = this.#d.fastPath()
    return f.listeners.length === 0
      ? {}
      : { fastPath: { ...f, listeners: f.listeners.map((l) => ({ ...l, targets: [...l.targets] })) } }
  }

  #gossip(started: boolean): ClusterStatus['gossip'] {
    const d = this.#d
    const c = d.bus.counters()
    const dropped: Record<string, number> = { ...c.dropped }
    const refused = d.election.refusedFrames()
    if (refused > 0) dropped.ELECTION_FRAME_REFUSED = refused
    const full = d.election.queueDrops()
    if (full > 0) dropped.ELECTION_QUEUE_FULL = full
    return {
      connectedPeers: started ? d.transport.connectedPeers().length : 0,
      topicPeers: started ? d.transport.topicPeers() : 0,
      messagesIn: c.messagesIn,
      messagesOut: c.messagesOut,
      dropped,
    }
  }

  electionView(members: readonly MemberView[] = this.members()): ElectionView {
    const d = this.#d
    const holders = members
      .filter((m) => !m.self && m.state === 'alive' && m.election?.holder === true)
      .map((m) => m.id)
    if (d.election.isMaster()) holders.push(d.self.id)
    return {
      ...d.election.view(),
      vipHolders: holders.sort(),
      checks: d.checks.views().map((c) => ({
        name: c.name,
        kind: c.kind,
        weight: c.weight,
        passing: c.passing,
        ran: c.ran,
        lastError: c.lastError,
        lastRunAt: c.lastRunAt === null ? null : new Date(c.lastRunAt).toISOString(),
      })),
    }
  }

  backends(): BackendsView {
    return this.#d.routing.backends()
  }

  metrics(): Promise<MetricsText> {
    return this.#d.metrics()
  }

  master(): MasterResponse {
    const d = this.#d
    const v = d.election.view()
    // 200 only while this node holds both the lease and the address (an acquire can fail)
    return { master: d.election.servesVip(), node: d.self.id, current: v.master, term: v.term }
  }

  health(): HealthResponse {
    return {
      status: 'ok',
      node: this.#d.self.id,
      uptimeMs: Math.round(this.#d.clock.mono() - this.#d.startedAt),
    }
  }

  ready(): ReadyResponse {
    const d = this.#d
    const reasons: string[] = []
    const m = d.maintenance.state
    if (m !== null) reasons.push(`in maintenance${m.reason === null ? '' : `: ${m.reason}`}`)
    for (const f of d.proxy.failed()) reasons.push(`listener ${f.name}: ${f.error}`)
    const startError = d.routing.startError
    if (startError !== null) reasons.push(`database checks: ${startError}`)
    if (!d.transport.started) reasons.push('gossip transport not started')
    else if (d.self.joins && d.transport.connectedPeers().length === 0) {
      reasons.push('not connected to any peer yet (seeds are being dialled)')
    }
    return { ready: reasons.length === 0, reasons }
  }

  config(): ConfigView {
    return this.#d.config.view()
  }

  maintenance(): MaintenanceView {
    return this.#d.maintenance.view()
  }
}
