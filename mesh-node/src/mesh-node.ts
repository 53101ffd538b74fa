import type { ClusterSource } from '@pgmesh/control-api'
import {
  type ClusterConfig,
  type ConfigFile,
  ELECTION_FRAME_MAX_BYTES,
  type ErrorCode,
  err,
  formatHostPort,
  type Heartbeat,
  type MemberRemoveResponse,
  ok,
  POLICY_DELTA_MAX_BYTES,
  type Result,
} from '@pgmesh/protocol'
import { checksPart } from './checks/checks-part.js'
import { createTrackedChecks } from './checks/tracked-checks.js'
import { ConfigApplier } from './config-sync/config-applier.js'
import { configHash } from './config-sync/config-hash.js'
import { ConfigService } from './config-sync/config-service.js'
import { type ConfigStore, memoryConfigStore } from './config-sync/config-store.js'
import type { RunningConfig } from './config-sync/config-sync.js'
import { ChangeEmitter } from './core/changes.js'
import { systemClock } from './core/clock.js'
import type { ChangeKind, Clock, Reconfigurable, Startable, Timer } from './core/contracts.js'
import { ElectionLink } from './election/election-link.js'
import { type ElectionStore, memoryElectionStore } from './election/election-store.js'
import { NodeEventLog } from './events/event-log.js'
import { bothPaths, KernelFastPath, kernelRoutes, parseBound } from './fastpath/kernel-fastpath.js'
import { GossipBus } from './gossip/gossip-bus.js'
import { GossipTransport } from './gossip/gossip-transport.js'
import { MeshRepair } from './gossip/mesh-repair.js'
import type { TransportFactory } from './gossip/transport.js'
import { HeartbeatService } from './heartbeat/heartbeat-service.js'
import { LocalPolicy } from './local-policy.js'
import type { Logger } from './log.js'
import { MemberDigest, unknownPeers } from './membership/member-digest.js'
import { MembershipService } from './membership/membership-service.js'
import { PeerDirectory, type PeerPinStore } from './membership/peer-directory.js'
import { NodeMetrics } from './metrics/metrics.js'
import { countVipTransitions } from './metrics/vip-counter.js'
import type { NodeIdentity } from './node-identity.js'
import { Maintenance, type MaintenanceStore, memoryMaintenanceStore } from './operator/maintenance.js'
import { checkRemovable } from './operator/remove-member.js'
import { listenerConfigs, proxyPart } from './proxy/proxy-part.js'
import { ProxyService } from './proxy/proxy-service.js'
import { RoutingService } from './routing/routing-service.js'
import { NodeView } from './view/node-view.js'
import { createLeaseGate } from './vip/lease-gate.js'
import { createVipDriver, type VipDriver } from './vip/vip-driver.js'
import { vipPart } from './vip/vip-part.js'

export { systemClock } from './core/clock.js'
export type { Clock } from './core/contracts.js'

export interface MeshNodeOptions {
  readonly config: ConfigFile
  readonly identity: NodeIdentity
  /** private-network key; undefined only with insecureDev */
  readonly psk: Uint8Array | undefined
  readonly logger: Logger
  readonly version: string
  readonly clock?: Clock
  /** the network; libp2p when absent (tests pass testing/memory-transport.ts) */
  readonly transport?: TransportFactory
  /** where the election keeps its term and vote; in memory when absent (tests) */
  readonly electionStore?: ElectionStore
  /** where maintenance is kept across restarts; in memory when absent (tests) */
  readonly maintenanceStore?: MaintenanceStore
  /** where node id ↔ peer id pins and peers' addresses are kept; in memory when absent */
  readonly peerStore?: PeerPinStore
  /** what this node allows the cluster config (node.allow); default: node.allow and the file's cluster section */
  readonly localPolicy?: LocalPolicy
  /** the VIP driver; made from `cluster.vip` when absent */
  readonly vip?: VipDriver
  /**
   * the versioned cluster config this node starts on, and where it keeps it; absent (tests): the
   * config's cluster section as version 1, kept in memory
   */
  readonly clusterConfig?: {
    readonly initial: RunningConfig
    readonly fileHash: string | null
    readonly store: ConfigStore
  }
}

/** A leave is sent this many times, spaced out, because gossip may lose any single message. */
const LEAVE_REPEATS = 3
const LEAVE_SPACING_MS = 40
/** The event log diffs the node's view at most this often (a burst of changes is one look). */
const EVENTS_COALESCE_MS = 100
/** Changes peers should hear about within the heartbeat's coalescing window, not at the next interval. */
const TELL_PEERS_SOON: ReadonlySet<ChangeKind> = new Set([
  'peer',
  'election',
  'checks',
  'maintenance',
  'config',
])

/**
 * One pgmesh node: the composition root. It builds the parts in dependency order, wires their
 * events, and runs one ordered start list and one ordered stop list. Behaviour lives in the parts
 * (see docs/architecture.md); nothing here decides anything.
 */
export class MeshNode {
  readonly id: string
  /** what the control API reads and the operator actions it calls */
  readonly api: ClusterSource
  readonly view: NodeView
  readonly #log: Logger
  readonly #clock: Clock
  readonly #startList: readonly Startable[]
  readonly #stopList: readonly (() => Promise<void> | void)[]
  readonly #config: ConfigService
  readonly #proxy: ProxyService
  #apiAddress: string | null = null
  #running = false

  constructor(o: MeshNodeOptions) {
    const { node, cluster } = o.config
    const clock = o.clock ?? systemClock
    const logger = o.logger
    const startedAt = clock.mono()
    this.id = node.id
    this.#clock = clock
    this.#log = logger.child({ component: 'node' })
    const changes = new ChangeEmitter((e) =>
      this.#log.error({ err: (e as Error).message }, 'change listener failed'),
    )

    // identity and the network
    const directory = new PeerDirectory(
      node.id,
      o.peerStore,
      (id) => membership.state.members.get(id)?.state === 'left',
    )
    const bus = new GossipBus({
      cluster: cluster.name,
      node: node.id,
      incarnation: o.identity.incarnation,
      maxMessageBytes: cluster.gossip.maxMessageBytes,
      clock,
      logger,
      admit: (id, peerId) => directory.admit(id, peerId),
    })
    const g = cluster.gossip
    const transport = (o.transport ?? ((opts, events) => new GossipTransport(opts, events)))(
      {
        privateKey: o.identity.privateKey,
        listen: node.gossip.listen,
        ...(node.gossip.advertise === undefined ? {} : { advertise: node.gossip.advertise }),
        ...(o.psk === undefined ? {} : { psk: o.psk }),
        topic: `pgmesh/${cluster.name}/v1`,
        directProtocol: `/pgmesh/${cluster.name}/election/1`,
        maxDirectFrameBytes: ELECTION_FRAME_MAX_BYTES,
        maxMessageBytes: g.maxMessageBytes,
        meshHeartbeatMs: g.meshHeartbeatMs,
        meshDegree: g.meshDegree,
        maxPeers: g.maxPeers,
      },
      {
        validate: (data, from) => bus.validate(data, from),
        message: (data, from) => bus.deliver(data, from),
        peerConnected: (peerId) => {
          digest.peerConnected()
          changes.emit('peer')
          election.peerConnected(peerId)
        },
        peerDisconnected: (peerId) => {
          membership.apply({ type: 'peerDisconnected', peerId })
          election.peerDisconnected(peerId)
        },
        peerSubscribed: () => {
          // gossip to this peer works from now on: the digest goes with the next heartbeat
          digest.peerConnected()
          changes.emit('peer')
        },
        directFrame: (peerId, data) => election.frame(peerId, data),
        directError: (peerId, reason) =>
          bus.drop('ELECTION_STREAM_ERROR', peerId, `election stream failed: ${reason}`, 'debug'),
        muxerUntuned: () =>
          this.#log.warn(
            { code: 'GOSSIP_MUXER_UNTUNED' satisfies ErrorCode },
            "yamux's internals are not the expected ones: its window updates are not batched (more CPU per message, nothing else changes)",
          ),
      },
    )
    bus.attach(transport)

    // the cluster config every part follows (parts read `applier.running`, the version they run)
    const parts: Reconfigurable[] = []
    const applier = new ConfigApplier({ parts, started: cluster, clock, logger, active: () => this.#running })
    const running = () => applier.running
    const initial = o.clusterConfig ?? {
      initial: {
        stamp: {
          version: 1,
          hash: configHash({}),
          origin: node.id,
          source: 'file' as const,
          at: new Date(clock.wall()).toISOString(),
        },
        input: {},
        parsed: cluster,
      },
      fileHash: null,
      store: memoryConfigStore(),
    }
    const localPolicy = o.localPolicy ?? new LocalPolicy({ allow: node.allow, fileCluster: cluster })
    const config = new ConfigService({
      admit: (parsed) => localPolicy.admit(parsed),
      self: node.id,
      initial: initial.initial,
      fileHash: initial.fileHash,
      store: initial.store,
      maxMessageBytes: g.maxMessageBytes,
      clock,
      logger,
      changes,
      bus,
      applier,
    })
    this.#config = config

    const membership = new MembershipService({
      self: node.id,
      clock,
      logger,
      changes,
      timings: () => running().membership,
    })

    const digest = new MemberDigest(node.id, () => membership.state)

    // traffic: the proxy routes through the routing service, which cuts sessions through the proxy
    // the proxy serves the VIP only while the election's lease runs (the VIP addresses follow edits)
    const vipIps = (v: typeof cluster.vip) =>
      [v.address?.ip, v.secondAddress?.ip].filter((ip): ip is string => ip !== undefined)
    const leaseGate = createLeaseGate({ mono: () => clock.mono(), addresses: vipIps(cluster.vip) })
    const proxy: ProxyService = new ProxyService(logger, (l) => routing.candidates(l), {
      leaseGate,
      clock,
      wallNow: () => clock.wall(),
      // a CancelRequest may belong to any database node's session
      cancelTargets: () =>
        running().databases.map((d) => ({ id: d.name, host: d.address.host, port: d.address.port })),
    })
    const fastpath: KernelFastPath = new KernelFastPath({
      node: node.id,
      clock,
      logger,
      routes: () =>
        kernelRoutes(
          listenerConfigs(running(), node.listenerBinds),
          (name) => {
            const l = proxy.status().find((x) => x.name === name)
            return l === undefined ? null : parseBound(l.bind)
          },
          (l) => routing.candidates(l),
        ),
    })
    const routing: RoutingService = new RoutingService({
      self: node.id,
      cluster: running,
      clock,
      logger,
      changes,
      sessions: bothPaths(
        proxy,
        fastpath,
        () => listenerConfigs(running(), node.listenerBinds),
        () => new Map(running().databases.map((d) => [d.name, d.address])),
      ),
      observers: () => membership.aliveIds(),
      onProbeRound: (s) => metrics.countCheckRound(s),
    })

    // the VIP and the election; checks report only after start, when the election link exists
    const checks = createTrackedChecks({
      checks: cluster.checks,
      onChange: (name, passing) => election.checkChanged(name, passing),
      logger,
      commands: localPolicy,
    })
    const vip = countVipTransitions(
      o.vip ??
        createVipDriver({
          config: cluster.vip,
          iface: node.vip.interface,
          node: node.id,
          logger,
          sessionsTo: (ip) => proxy.sessionsTo(ip),
          commands: localPolicy,
          mono: () => clock.mono(),
        }),
    )
    const election = new ElectionLink({
      self: node.id,
      priority: node.priority,
      founding: node.join.length === 0,
      cluster: running,
      clock,
      logger,
      changes,
      transport,
      directory,
      bus,
      membership: () => membership.state,
      checks,
      store: o.electionStore ?? memoryElectionStore(),
      vip,
      leaseObservers: [leaseGate],
    })
    const maintenance = new Maintenance({
      node: node.id,
      store: o.maintenanceStore ?? memoryMaintenanceStore(),
      setEligible: async (eligible) => {
        election.driver.deliver({ type: 'maintenance', enabled: !eligible })
        await election.driver.settled()
      },
      proxy,
      vip,
      wall: () => clock.wall(),
      logger,
      onChange: () => changes.emit('maintenance'),
    })

    // being heard: heartbeats with every part's fields, and the mesh kept connected
    const heartbeat = new HeartbeatService({
      clock,
      bus,
      intervalMs: () => running().membership.heartbeatIntervalMs,
      base: () => ({
        priority: node.priority,
        addrs: transport.started ? transport.addresses().slice(0, 16) : [],
        api: this.#apiAddress,
      }),
      contributors: [
        digest,
        config,
        election,
        routing,
        // traffic policy shared by the mesh: rate counters and sticky entries changed since the last one
        {
          heartbeatFields: (now) => {
            const policy = proxy.policy.exportDelta(
              now,
              Math.min(POLICY_DELTA_MAX_BYTES, Math.floor(g.maxMessageBytes / 4)),
            )
            return policy === undefined ? {} : { policy }
          },
        },
        {
          heartbeatFields: (now) => {
            const m = maintenance.state
            const removed = membership.removals(now)
            return {
              ...(m === null ? {} : { maintenance: { reason: m.reason, since: m.since } }),
              ...(removed.length === 0 ? {} : { removed }),
            }
          },
        },
      ],
    })
    const repair = new MeshRepair({
      clock,
      logger,
      transport,
      seeds: node.join.filter(
        (s) => formatHostPort(s) !== formatHostPort(node.gossip.listen) || node.gossip.listen.port === 0,
      ),
      joinRetry: node.joinRetry,
      membership: () => membership.state,
      knownPeers: () => directory.known(),
      timings: () => ({
        suspectTimeoutMs: running().membership.suspectTimeoutMs,
        subscribeGraceMs: g.subscribeGraceMs,
      }),
      onJoined: () => heartbeat.soon(),
      persist: () => directory.save(),
    })

    // what arrives by gossip
    bus.on('heartbeat', (msg, from) =>
      this.#onHeartbeat(msg, from, {
        directory,
        config,
        membership,
        routing,
        repair,
        proxy,
        bus,
        election,
        self: node.id,
        incarnation: o.identity.incarnation,
      }),
    )
    bus.on('leave', (msg) => membership.apply({ type: 'leave', msg }))
    bus.on('config', (msg, from) => config.offered(msg, from))
    changes.on((kind) => {
      if (kind === 'members') election.syncMembers()
      if (TELL_PEERS_SOON.has(kind)) heartbeat.soon()
    })

    const metrics: NodeMetrics = new NodeMetrics({
      info: { node: node.id, cluster: cluster.name, version: o.version },
      status: () => view.status(),
      isMaster: () => election.driver.isMaster(),
      databases: () => routing.statuses(),
      vip: () => vip.counts(),
      certificates: () => proxy.certificateExpiries(),
      defaultMetrics: true,
    })
    const view: NodeView = new NodeView({
      self: {
        id: node.id,
        priority: node.priority,
        incarnation: o.identity.incarnation,
        joins: node.join.length > 0,
      },
      cluster: cluster.name,
      version: o.version,
      startedAt,
      clock,
      transport,
      bus,
      membership,
      election: election.driver,
      checks,
      proxy,
      routing,
      config,
      applier,
      maintenance,
      apiAddress: () => this.#apiAddress,
      metrics: () => metrics.render(),
      fastPath: () => fastpath.status(),
    })
    this.view = view
    this.#proxy = proxy

    // the node's timeline: its view diffed at most every EVENTS_COALESCE_MS after a change
    const events = new NodeEventLog({
      nodeId: node.id,
      onEvent: (e) => eventLog.info({ event: e }, 'cluster event'),
    })
    const eventLog = logger.child({ component: 'events' })
    let observing: Timer | null = null
    const observe = () => {
      observing = null
      if (this.#running) events.observe(view.status(), view.backends())
    }
    changes.on(() => {
      if (this.#running) observing ??= clock.after(EVENTS_COALESCE_MS, observe)
    })

    // the order a new config version is applied in (and given back in reverse on a refusal)
    parts.push(
      membership,
      heartbeat,
      repair,
      routing,
      checksPart(checks),
      vipPart(vip, logger),
      { name: 'lease-gate', reconfigure: (next) => leaseGate.setAddresses(vipIps(next.vip)) },
      election,
      proxyPart(proxy, node.listenerBinds),
      { name: 'fastpath', reconfigure: () => fastpath.sync() },
    )

    this.#startList = [
      { start: () => directory.load(), stop: () => directory.save() },
      transport,
      { start: () => this.#logStarted(transport.peerId, transport.addresses(), o), stop: () => undefined },
      routing,
      { start: () => maintenance.load(), stop: () => undefined },
      {
        start: async () => void (await proxy.apply(listenerConfigs(running(), node.listenerBinds))),
        stop: () => undefined,
      },
      fastpath,
      { start: () => checks.start(), stop: () => undefined },
      election,
      membership,
      heartbeat,
      repair,
      { start: () => observe(), stop: () => undefined },
    ]
    // stop: the election first so the VIP is released while connections are still up, then stop
    // accepting and let sessions finish, then the rest, then leave, then the transport
    this.#stopList = [
      () => config.settled(),
      () => observing?.cancel(),
      () => heartbeat.stop(),
      () => repair.stop(),
      () => membership.stop(),
      () => election.stop(),
      () => fastpath.stop(),
      () => proxy.drain(),
      () => routing.stop(),
      () => checks.stop(),
      () => directory.save(),
      () => this.#leave(bus, transport.started),
      () => transport.stop(),
    ]

    this.api = {
      status: () => view.status(),
      members: () => view.members(),
      health: () => view.health(),
      ready: () => view.ready(),
      master: () => view.master(),
      backends: () => view.backends(),
      metrics: () => view.metrics(),
      config: () => view.config(),
      maintenance: () => view.maintenance(),
      putConfig: (body) => config.put(body),
      setMaintenance: (body) => maintenance.set(body.enabled, body.reason),
      removeMember: (id) => this.#removeMember(id, { running, election, membership, directory, heartbeat }),
      events: (since) => events.events(since),
    }
  }

  /** The control API's address as peers should reach it (shown in heartbeats and status). */
  setApiAddress(address: string | null): void {
    this.#apiAddress = address
  }

  async start(): Promise<void> {
    if (this.#running) return
    this.#running = true
    for (const part of this.#startList) await part.start()
  }

  /** Graceful leave: the VIP handed over, sessions drained, peers told (they mark us `left` at once). */
  async stop(): Promise<void> {
    if (!this.#running) return
    this.#running = false
    for (const step of this.#stopList) await step()
    this.#log.info('left the mesh')
  }

  /** SIGHUP: every terminating listener re-reads its certificate, key and CA files; the failures. */
  reloadTls(): ReturnType<ProxyService['reloadTls']> {
    return this.#proxy.reloadTls()
  }

  /** See ConfigService.reloadFile (SIGHUP). */
  reloadClusterFile(input: Record<string, unknown>): Promise<Result<RunningConfig | null>> {
    return this.#config.reloadFile(input)
  }

  #onHeartbeat(
    msg: Heartbeat,
    from: string,
    p: {
      directory: PeerDirectory
      config: ConfigService
      membership: MembershipService
      routing: RoutingService
      repair: MeshRepair
      proxy: ProxyService
      bus: GossipBus
      election: ElectionLink
      self: string
      incarnation: number
    },
  ): void {
    // membership first: a heartbeat it does not admit (an invented id, a full table) carries
    // nothing else worth believing — no config offer, removals, database views or addresses
    const fresh = msg.peers === undefined ? [] : unknownPeers(msg.peers, p.self, p.membership.state)
    const changes = p.membership.apply({ type: 'heartbeat', msg })
    if (changes.some((c) => c.type === 'refused')) {
      p.bus.drop('GOSSIP_MEMBER_REFUSED', from, `heartbeat of ${msg.node} not admitted`, 'debug')
      return
    }
    p.directory.bind(msg.node, from, msg.addrs)
    p.config.compare(msg)
    if (msg.removed !== undefined) {
      for (const r of msg.removed) {
        if (r.node !== p.self)
          p.membership.apply({ type: 'remove', id: r.node, incarnation: r.incarnation, ageMs: r.ageMs })
        else if (r.incarnation >= p.incarnation) p.membership.removedSelf(r.incarnation)
      }
    }
    if (msg.policy !== undefined)
      p.proxy.policy.mergeRemote(msg.node, msg.policy, this.#clock.mono(), msg.incarnation)
    for (const peer of fresh)
      if (p.directory.admit(peer.node, peer.peerId) === null) p.repair.discovered(peer.peerId, peer.addrs)
    if (msg.databases !== undefined) p.routing.observe(msg.node, msg.databases, this.#clock.mono())
    if (msg.election?.config !== undefined) p.election.reported(msg.node, msg.election.config)
    // dial a member when it comes alive (or back), not at every heartbeat
    if (changes.some((c) => c.type === 'state' && c.to === 'alive'))
      p.repair.discovered(msg.peerId, msg.addrs)
  }

  /**
   * `POST /v1/members/{id}/remove`: a dead member stops counting here at once (the MASTER moves the
   * voters without it), every node learns it from our heartbeats, and its identity pin is released
   * (a reinstalled node with a new key may take the id).
   */
  async #removeMember(
    id: string,
    p: {
      running: () => ClusterConfig
      election: ElectionLink
      membership: MembershipService
      directory: PeerDirectory
      heartbeat: HeartbeatService
    },
  ): Promise<Result<MemberRemoveResponse>> {
    const voters = () => p.election.driver.view().voters?.voters ?? []
    const listed = [...p.running().members.map((m) => m.id), ...voters()]
    const r = checkRemovable(id, this.id, p.membership.state, listed)
    if (!r.ok) return err(r.error)
    this.#log.warn(
      { member: id, incarnation: r.value.incarnation, code: 'operator' },
      `an operator removed member ${id}: it no longer counts toward quorum`,
    )
    p.membership.apply({ type: 'remove', id, incarnation: r.value.incarnation })
    p.directory.release(id)
    p.heartbeat.soon()
    await p.election.driver.settled()
    return ok({
      removed: id,
      incarnation: p.membership.state.removed.get(id)?.incarnation ?? r.value.incarnation,
      voters: p.election.driver.view().voters?.voters ?? null,
    })
  }

  #logStarted(peerId: string, addrs: string[], o: MeshNodeOptions): void {
    this.#log.info(
      {
        peerId,
        incarnation: o.identity.incarnation,
        addrs,
        cluster: o.config.cluster.name,
        private: o.psk !== undefined,
      },
      'gossip started',
    )
  }

  async #leave(bus: GossipBus, started: boolean): Promise<void> {
    if (!started) return
    for (let i = 0; i < LEAVE_REPEATS; i++) {
      await bus.publish({ kind: 'leave' })
      await this.#clock.sleep(LEAVE_SPACING_MS)
    }
  }
}
