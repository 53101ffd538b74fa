import type { ClusterSource, MetricsText } from '@pgmesh/control-api'
import {
  type BackendsView,
  type ClusterConfig,
  type ClusterStatus,
  type ConfigFile,
  type ConfigPutBody,
  type ConfigPutResponse,
  type ConfigView,
  decodeElectionFrame,
  decodeGossip,
  ELECTION_FRAME_MAX_BYTES,
  type ElectionMessage,
  type ElectionView,
  encodeElectionFrame,
  encodeGossip,
  err,
  formatHostPort,
  type GossipMessage,
  type HealthResponse,
  type Heartbeat,
  type ListenerConfig,
  type MaintenancePutBody,
  type MaintenanceView,
  type MasterResponse,
  MEMBER_STATES,
  type MemberRemoveResponse,
  type MemberView,
  newerConfig,
  ok,
  type ReadyResponse,
  type Result,
  type VipConfig,
} from '@pgmesh/protocol'
import { createTrackedChecks, type TrackedChecks } from './checks/tracked-checks.js'
import { canonicalJson, configHash } from './config-sync/config-hash.js'
import { type ConfigStore, memoryConfigStore } from './config-sync/config-store.js'
import { ConfigSync, type RunningConfig } from './config-sync/config-sync.js'
import { DatabaseMonitor, type DbState } from './database/database-monitor.js'
import { ElectionDriver } from './election/election-driver.js'
import { type ElectionStore, memoryElectionStore } from './election/election-store.js'
import type { ElectionOptions } from './election/types.js'
import { GossipTransport } from './gossip/gossip-transport.js'
import { runJoinLoop } from './gossip/join-loop.js'
import { type Logger, RateLimitedLog } from './log.js'
import {
  initialMembership,
  type MembershipChange,
  type MembershipEvent,
  type MembershipState,
  membershipStep,
  memberViews,
  removalsToGossip,
  removedViews,
} from './membership/membership.js'
import { NodeMetrics } from './metrics/metrics.js'
import { type CountingVipDriver, countVipTransitions } from './metrics/vip-counter.js'
import type { NodeIdentity } from './node-identity.js'
import { Maintenance, type MaintenanceStore, memoryMaintenanceStore } from './operator/maintenance.js'
import { checkRemovable } from './operator/remove-member.js'
import { ProxyService } from './proxy/proxy-service.js'
import type { DbView } from './routing/agreement.js'
import { Router } from './routing/router.js'
import { createVipDriver, type VipDriver } from './vip/vip-driver.js'

export interface Clock {
  /** monotonic milliseconds, for every duration */
  mono(): number
  /** wall-clock milliseconds since the epoch, for display only */
  wall(): number
}

export const systemClock: Clock = { mono: () => performance.now(), wall: () => Date.now() }

export interface MeshNodeOptions {
  readonly config: ConfigFile
  readonly identity: NodeIdentity
  /** private-network key; undefined only with insecureDev */
  readonly psk: Uint8Array | undefined
  readonly logger: Logger
  readonly version: string
  readonly clock?: Clock
  /** where the election keeps its term and vote; in memory when absent (tests) */
  readonly electionStore?: ElectionStore
  /** where maintenance is kept across restarts; in memory when absent (tests) */
  readonly maintenanceStore?: MaintenanceStore
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

/** How often a noisy peer's bad messages are logged (each drop is still counted). */
const DROP_LOG_INTERVAL_MS = 10_000
/** A leave is sent this many times, spaced out, because gossip may lose any single message. */
const LEAVE_REPEATS = 3
const LEAVE_SPACING_MS = 40
/**
 * A new peer gets our state at once instead of at the next interval; extra heartbeats asked for
 * within this window are coalesced, so a burst of connections (a cluster starting) sends one.
 */
const EXTRA_HEARTBEAT_COALESCE_MS = 50
/** A member seen on an older config version gets ours at most this often. */
const CONFIG_RESEND_MS = 1_000
/**
 * What of the cluster config applies only at the next start (everything else applies live): the
 * gossip tuning (libp2p's settings are fixed at start), the election's quorum mode (the two modes
 * keep different state) and the VIP driver kind.
 */
function restartOnly(started: ClusterConfig, now: ClusterConfig): string[] {
  const out: string[] = []
  if (canonicalJson(started.gossip) !== canonicalJson(now.gossip)) out.push('gossip')
  if (started.election.quorum !== now.election.quorum) out.push('election.quorum')
  if (started.vip.driver !== now.vip.driver) out.push('vip.driver')
  return out
}

/**
 * One pgmesh node: the gossip transport, the membership state machine fed by heartbeats, and the
 * ClusterSource the control API reads. Timers and sockets live here; decisions live in the pure
 * state machines.
 */
export class MeshNode implements ClusterSource {
  readonly #o: MeshNodeOptions
  readonly #clock: Clock
  readonly #log: Logger
  readonly #gossipLog: Logger
  readonly #membershipLog: Logger
  readonly #transport: GossipTransport
  readonly #dropLog = new RateLimitedLog(DROP_LOG_INTERVAL_MS)
  readonly #decoded = new WeakMap<Uint8Array, GossipMessage>()
  readonly #dropped: Record<string, number> = {}
  readonly #startedAt: number
  #membership: MembershipState
  #seq = 0
  #messagesIn = 0
  #messagesOut = 0
  #apiAddress: string | null = null
  #running: AbortController | null = null
  #timers: NodeJS.Timeout[] = []
  #joined = false
  #joinLoop: Promise<void> = Promise.resolve()
  #extraHeartbeat: NodeJS.Timeout | null = null
  readonly #checks: TrackedChecks
  readonly #election: ElectionDriver
  readonly #electionLog: Logger
  /** authenticated peer id ↔ node id, learnt from signed heartbeats */
  readonly #nodeByPeer = new Map<string, string>()
  readonly #peerByNode = new Map<string, string>()
  #electionMembers = ''
  readonly #proxy: ProxyService
  #router: Router
  #databases: DatabaseMonitor
  #rerouteTimer: NodeJS.Timeout | null = null
  #membershipTimers: NodeJS.Timeout[] = []
  readonly #config: ConfigSync
  #configSentAt = Number.NEGATIVE_INFINITY
  readonly #metrics: NodeMetrics
  readonly #maintenance: Maintenance
  readonly #vip: CountingVipDriver
  /** the checks and timings last given to the election, to skip no-op reconfigurations */
  #electionOptionsKey = ''

  constructor(o: MeshNodeOptions) {
    this.#o = o
    this.#clock = o.clock ?? systemClock
    this.#startedAt = this.#clock.mono()
    this.#log = o.logger.child({ component: 'node' })
    this.#gossipLog = o.logger.child({ component: 'gossip' })
    this.#membershipLog = o.logger.child({ component: 'membership' })
    this.#membership = initialMembership(o.config.node.id)
    const g = o.config.cluster.gossip
    this.#transport = new GossipTransport(
      {
        privateKey: o.identity.privateKey,
        listen: o.config.node.gossip.listen,
        ...(o.config.node.gossip.advertise === undefined
          ? {}
          : { advertise: o.config.node.gossip.advertise }),
        ...(o.psk === undefined ? {} : { psk: o.psk }),
        topic: `pgmesh/${o.config.cluster.name}/v1`,
        directProtocol: `/pgmesh/${o.config.cluster.name}/election/1`,
        maxDirectFrameBytes: ELECTION_FRAME_MAX_BYTES,
        maxMessageBytes: g.maxMessageBytes,
        meshHeartbeatMs: g.meshHeartbeatMs,
        meshDegree: g.meshDegree,
        maxPeers: g.maxPeers,
      },
      {
        validate: (data, from) => this.#validate(data, from),
        message: (data, from) => this.#onMessage(data, from),
        peerConnected: (peerId) => {
          this.#gossipLog.debug({ peer: peerId }, 'peer connected')
          this.#heartbeatSoon()
          if (this.#nodeByPeer.has(peerId)) this.#election.peerReconnected()
        },
        peerDisconnected: (peerId) => {
          this.#gossipLog.debug({ peer: peerId }, 'peer disconnected')
          this.#apply({ type: 'peerDisconnected', peerId })
          const id = this.#nodeByPeer.get(peerId)
          if (id !== undefined) this.#election.deliver({ type: 'peerDisconnected', id })
        },
        peerSubscribed: () => this.#heartbeatSoon(),
        directFrame: (peerId, data) => this.#onElectionFrame(peerId, data),
        directError: (peerId, reason) => {
          this.#drop('ELECTION_STREAM_ERROR', peerId, `election stream failed: ${reason}`, 'debug')
        },
      },
    )
    const { cluster, node } = o.config
    this.#electionLog = o.logger.child({ component: 'election' })
    const cc = o.clusterConfig ?? {
      initial: {
        stamp: {
          version: 1,
          hash: configHash({}),
          origin: node.id,
          source: 'file' as const,
          at: new Date().toISOString(),
        },
        input: {},
        parsed: cluster,
      },
      fileHash: null,
      store: memoryConfigStore(),
    }
    this.#config = new ConfigSync({
      self: node.id,
      initial: cc.initial,
      fileHash: cc.fileHash,
      store: cc.store,
      logger: o.logger,
      maxMessageBytes: cluster.gossip.maxMessageBytes,
      apply: (next, prev) => this.#applyConfig(next, prev),
    })
    ;[this.#router, this.#databases] = this.#databaseParts(cluster)
    this.#proxy = new ProxyService(o.logger, (l) =>
      this.#router.candidates(l, (db) => this.#databases.status(db)?.state),
    )
    this.#checks = createTrackedChecks({
      checks: cluster.checks,
      onChange: (name, passing) => {
        // a check added live starts counting with this first result
        this.#reconfigureElection()
        this.#election.deliver({ type: 'check', name, passing })
        this.#heartbeatSoon()
      },
      logger: o.logger,
    })
    this.#vip = countVipTransitions(
      o.vip ??
        createVipDriver({
          config: cluster.vip,
          iface: node.vip.interface,
          node: node.id,
          logger: o.logger,
          sessionsTo: (ip) => this.#proxy.sessionsTo(ip),
        }),
    )
    const vip = this.#vip
    const founders = cluster.members.map((m) => m.id)
    const electionOptions = this.#electionOptions(cluster)
    this.#electionOptionsKey = electionOptionsKey(electionOptions, cluster.vip)
    this.#election = new ElectionDriver({
      options: electionOptions,
      // listed founders, else the seed (a node started without --join) founds the cluster alone
      // and the MASTER adds every node that joins
      initialVoters: founders.length > 0 ? founders : node.join.length === 0 ? [node.id] : null,
      store: o.electionStore ?? memoryElectionStore(),
      vip,
      vipConfig: cluster.vip,
      send: (to, msg) => this.#sendElection(to, msg),
      broadcast: (msg) => this.#broadcastElection(msg),
      now: () => this.#clock.mono(),
      logger: o.logger,
      onChange: () => this.#heartbeatSoon(),
    })
    this.#maintenance = new Maintenance({
      node: node.id,
      store: o.maintenanceStore ?? memoryMaintenanceStore(),
      setEligible: async (eligible) => {
        this.#election.deliver({ type: 'maintenance', enabled: !eligible })
        await this.#election.settled()
      },
      proxy: this.#proxy,
      vip: this.#vip,
      wall: () => this.#clock.wall(),
      logger: o.logger,
      onChange: () => this.#heartbeatSoon(),
    })
    this.#metrics = new NodeMetrics({
      info: { node: node.id, cluster: cluster.name, version: o.version },
      status: () => this.status(),
      isMaster: () => this.#election.isMaster(),
      databases: () => this.#databases.statuses(),
      vip: () => vip.counts(),
      defaultMetrics: true,
    })
  }

  get id(): string {
    return this.#o.config.node.id
  }

  /** The control API's address as peers should reach it (shown in heartbeats and status). */
  setApiAddress(address: string | null): void {
    this.#apiAddress = address
  }

  async start(): Promise<void> {
    if (this.#running !== null) return
    const running = new AbortController()
    this.#running = running
    await this.#transport.start()
    const { node, cluster } = this.#o.config
    this.#log.info(
      {
        peerId: this.#transport.peerId,
        incarnation: this.#o.identity.incarnation,
        addrs: this.#transport.addresses(),
        cluster: cluster.name,
        private: this.#o.psk !== undefined,
      },
      'gossip started',
    )
    this.#warnAboutQuorum()
    await this.#databases.start()
    await this.#maintenance.load()
    await this.#proxy.apply(this.#listenerConfigs())
    this.#checks.start()
    await this.#election.start(this.#checks.failing(), (Math.random() * 0x7fffffff) | 0)
    this.#scheduleMembership()
    this.#scheduleReroute()
    this.#sendHeartbeat()
    this.#joinLoop = runJoinLoop(
      {
        seeds: node.join.filter(
          (s) => formatHostPort(s) !== formatHostPort(node.gossip.listen) || node.gossip.listen.port === 0,
        ),
        ...node.joinRetry,
        dialSeed: (seed, signal) => this.#transport.dialSeed(seed, signal),
        isConnected: (p) => this.#transport.isConnected(p),
        onJoined: (seed, peerId) => {
          if (!this.#joined) this.#log.info({ seed: formatHostPort(seed), peer: peerId }, 'joined the mesh')
          this.#joined = true
          this.#heartbeatSoon()
        },
        log: this.#o.logger.child({ component: 'join' }),
      },
      running.signal,
    )
  }

  /** Graceful leave: tell peers (so they mark us `left` at once), then close everything. */
  async stop(): Promise<void> {
    const running = this.#running
    if (running === null) return
    this.#running = null
    for (const t of this.#timers) clearInterval(t)
    this.#timers = []
    if (this.#rerouteTimer !== null) clearInterval(this.#rerouteTimer)
    this.#rerouteTimer = null
    for (const t of this.#membershipTimers) clearInterval(t)
    this.#membershipTimers = []
    await this.#config.settled()
    if (this.#extraHeartbeat !== null) clearTimeout(this.#extraHeartbeat)
    this.#extraHeartbeat = null
    running.abort()
    await this.#joinLoop
    // first hand the VIP over (released, then `release` sent), while the connections are still up;
    // then stop accepting and let established sessions finish
    await this.#election.stop()
    await this.#proxy.drain()
    this.#databases.stop()
    await this.#checks.stop()
    if (this.#transport.started) {
      for (let i = 0; i < LEAVE_REPEATS; i++) {
        await this.#publish({
          v: 1,
          kind: 'leave',
          cluster: this.#o.config.cluster.name,
          node: this.id,
          peerId: this.#transport.peerId,
          incarnation: this.#o.identity.incarnation,
          sentAt: this.#clock.wall(),
        })
        await new Promise((r) => setTimeout(r, LEAVE_SPACING_MS))
      }
      await this.#transport.stop()
    }
    this.#log.info('left the mesh')
  }

  // ---- ClusterSource

  members(): MemberView[] {
    const started = this.#transport.started
    return memberViews(
      this.#membership,
      {
        peerId: started ? this.#transport.peerId : '',
        incarnation: this.#o.identity.incarnation,
        priority: this.#o.config.node.priority,
        addrs: started ? this.#transport.addresses() : [],
        api: this.#apiAddress,
        configVersion: this.#config.current.stamp.version,
        startedAt: this.#startedAt,
        election: this.#election.summary([...this.#checks.failing()]) ?? null,
        maintenance: this.#maintenance.state,
      },
      this.#clock.mono(),
      this.#clock.wall(),
    )
  }

  status(): ClusterStatus {
    const members = this.members()
    const counts = Object.fromEntries(MEMBER_STATES.map((s) => [s, 0])) as Record<MemberView['state'], number>
    for (const m of members) counts[m.state]++
    return {
      cluster: this.#o.config.cluster.name,
      version: this.#o.version,
      self: this.id,
      generatedAt: new Date(this.#clock.wall()).toISOString(),
      members,
      counts,
      gossip: {
        connectedPeers: this.#transport.started ? this.#transport.connectedPeers().length : 0,
        topicPeers: this.#transport.started ? this.#transport.topicPeers() : 0,
        messagesIn: this.#messagesIn,
        messagesOut: this.#messagesOut,
        dropped: { ...this.#dropped },
      },
      election: this.electionView(members),
      listeners: this.#proxy.status(),
      config: {
        version: this.#config.current.stamp.version,
        hash: this.#config.current.stamp.hash,
        origin: this.#config.current.stamp.origin,
        pendingRestart: this.#pendingRestart(),
        conflicts: this.#config.conflicts().length,
      },
      removed: removedViews(this.#membership, this.#clock.mono(), this.#clock.wall()),
    }
  }

  backends(): BackendsView {
    const now = this.#clock.mono()
    const a = this.#router.agreement
    const views = this.#router.views()
    return {
      node: this.id,
      agreed: { ...a, replicas: [...a.replicas], up: [...a.up], notes: [...a.notes] },
      databases: this.#cluster.databases.map((d) => {
        const s = this.#databases.status(d.name)
        const fresh = s !== undefined && Number.isFinite(s.at)
        return {
          name: d.name,
          address: formatHostPort(d.address),
          local: {
            state: s?.state ?? 'down',
            timeline: s?.timeline ?? null,
            lagBytes: s?.lagBytes ?? null,
            ageMs: fresh ? Math.round(now - s.at) : null,
            postgres: s?.postgres ?? null,
            patroni: s?.patroni ?? null,
            tcp: s?.tcp ?? null,
          },
          observers: [...views]
            .flatMap(([node, m]) => {
              const o = m.get(d.name)
              return o === undefined
                ? []
                : [
                    {
                      node,
                      state: viewState(o.view),
                      timeline: o.view.timeline,
                      ageMs: Math.max(0, Math.round(now - o.at)),
                    },
                  ]
            })
            .sort((x, y) => x.node.localeCompare(y.node)),
        }
      }),
    }
  }

  /**
   * Recomputes the agreed roles; when they change, queued clients are served and sessions to a
   * backend that stopped being what their listener routes to are closed: for write listeners, a
   * backend this node's own confirmed check no longer sees writable, or one the cluster agrees is
   * not the primary any more (another one is); for the others, a backend confirmed down.
   */
  #reroute(): void {
    if (this.#cluster.databases.length === 0) return
    const now = this.#clock.mono()
    this.#router.local(this.#databases.statuses())
    const observers = [this.id]
    for (const [id, rec] of this.#membership.members) if (rec.state === 'alive') observers.push(id)
    const { agreement, changed } = this.#router.recompute(observers, now)
    if (changed) {
      this.#log[agreement.primary === null ? 'warn' : 'info'](
        {
          primary: agreement.primary,
          timeline: agreement.primaryTimeline,
          replicas: agreement.replicas,
          notes: agreement.notes,
        },
        agreement.primary === null ? 'no agreed primary' : `agreed primary: ${agreement.primary}`,
      )
    }
    this.#proxy.cut((listener, backend) => {
      const own = this.#databases.status(backend)?.state
      if (listener.role === 'primary') {
        if (own !== 'primary')
          return `${backend} is no longer primary by this node's checks (${own ?? 'unknown'})`
        if (agreement.primary !== null && agreement.primary !== backend) {
          return `the cluster agrees ${agreement.primary} is the primary`
        }
        return null
      }
      if (listener.role !== 'servers' && own === 'down') return `${backend} is down`
      return null
    })
    this.#proxy.kickAll()
  }

  /**
   * The config file's cluster section, re-read (SIGHUP, or a file changed while the node was down):
   * when it changed since it was last read, it is a new cluster config version for every node.
   */
  async reloadClusterFile(input: Record<string, unknown>): Promise<Result<RunningConfig | null>> {
    const r = this.#config.fileChanged(input)
    if (r.ok && r.value !== null) await this.#afterEdit()
    return r
  }

  /** `GET /v1/config` */
  config(): ConfigView {
    return {
      ...this.#config.versioned(),
      pendingRestart: this.#pendingRestart(),
      conflicts: this.#config.conflicts().map((c) => ({ ...c })),
    }
  }

  /** `PUT /v1/config`: a new version made here, sent to every node, applied here before answering. */
  async putConfig(body: ConfigPutBody): Promise<Result<ConfigPutResponse>> {
    const r = this.#config.edit(body.cluster, 'api', body.baseVersion)
    if (!r.ok) return r
    await this.#afterEdit()
    return ok({ version: r.value.stamp.version, hash: r.value.stamp.hash })
  }

  async #afterEdit(): Promise<void> {
    await this.#config.settled()
    this.#configSentAt = Number.NEGATIVE_INFINITY
    await this.#sendConfig()
    this.#heartbeatSoon()
  }

  /** The cluster config running now (hot sections follow edits; see RESTART_SECTIONS). */
  get #cluster(): ClusterConfig {
    return this.#config.current.parsed
  }

  #pendingRestart(): string[] {
    return restartOnly(this.#o.config.cluster, this.#cluster)
  }

  #electionOptions(c: ClusterConfig): ElectionOptions {
    return {
      self: this.id,
      priority: this.#o.config.node.priority,
      checks: this.#checks.weighted(),
      config: c.election,
    }
  }

  /** Gives the election the running config's checks and timings, when they changed. */
  #reconfigureElection(): void {
    const c = this.#cluster
    const options = this.#electionOptions(c)
    const key = electionOptionsKey(options, c.vip)
    if (key === this.#electionOptionsKey) return
    this.#electionOptionsKey = key
    this.#election.reconfigure(options, c.vip)
  }

  /** The cluster's listeners with this node's own bind addresses (`node.listenerBinds`). */
  #listenerConfigs(): ListenerConfig[] {
    const binds = this.#o.config.node.listenerBinds
    return this.#cluster.listeners.map((l) => {
      const bind = binds[l.name]
      return bind === undefined ? l : { ...l, bind }
    })
  }

  #databaseParts(c: ClusterConfig): [Router, DatabaseMonitor] {
    const router = new Router(this.id, c.databases, c.databaseChecks.freshMs)
    const monitor = new DatabaseMonitor(
      c.databases,
      c.databaseChecks,
      this.#o.logger,
      () => this.#reroute(),
      undefined,
      (status) => this.#metrics.countCheckRound(status),
    )
    return [router, monitor]
  }

  /** Heartbeats, failure-detector ticks and connection repair, at the running config's timings. */
  #scheduleMembership(): void {
    for (const t of this.#membershipTimers) clearInterval(t)
    const m = this.#cluster.membership
    this.#membershipTimers = [
      setInterval(() => this.#sendHeartbeat(), m.heartbeatIntervalMs),
      setInterval(() => this.#apply({ type: 'tick' }), Math.max(10, m.heartbeatIntervalMs / 2)),
      setInterval(() => void this.#repairConnections(), m.suspectTimeoutMs),
    ]
  }

  #scheduleReroute(): void {
    if (this.#rerouteTimer !== null) clearInterval(this.#rerouteTimer)
    this.#rerouteTimer = null
    const c = this.#cluster
    if (c.databases.length > 0) {
      this.#rerouteTimer = setInterval(() => this.#reroute(), c.databaseChecks.intervalMs)
    }
  }

  /** Applies an adopted cluster config: databases and listeners live, established sessions kept. */
  async #applyConfig(next: RunningConfig, prev: RunningConfig): Promise<void> {
    if (this.#running === null) return
    const changed = (k: keyof ClusterConfig) =>
      canonicalJson(next.parsed[k]) !== canonicalJson(prev.parsed[k])
    if (changed('databases') || changed('databaseChecks')) {
      this.#databases.stop()
      ;[this.#router, this.#databases] = this.#databaseParts(next.parsed)
      await this.#databases.start()
      this.#scheduleReroute()
    }
    if (changed('membership')) this.#scheduleMembership()
    if (changed('members')) this.#syncElectionMembers()
    if (changed('checks')) this.#checks.update(next.parsed.checks)
    // the driver applies what it can; a new driver kind it logs as restart-only (pendingRestart)
    if (changed('vip')) {
      try {
        await this.#vip.reconfigure(next.parsed.vip)
      } catch (e) {
        this.#log.error(
          { code: 'VIP_RECONFIGURE_FAILED', err: e instanceof Error ? e.message : String(e) },
          'could not apply the new VIP settings',
        )
      }
    }
    this.#reconfigureElection()
    const r = await this.#proxy.apply(this.#listenerConfigs())
    this.#log.info(
      {
        version: next.stamp.version,
        started: r.started,
        updated: r.updated,
        removed: r.removed,
        failed: r.failed.map((f) => f.name),
        pendingRestart: this.#pendingRestart(),
      },
      `cluster config version ${next.stamp.version} applied`,
    )
    this.#heartbeatSoon()
  }

  async #sendConfig(): Promise<void> {
    const now = this.#clock.mono()
    if (this.#config.current.stamp.version === 0 || now - this.#configSentAt < CONFIG_RESEND_MS) return
    this.#configSentAt = now
    await this.#publish({
      v: 1,
      kind: 'config',
      cluster: this.#cluster.name,
      node: this.id,
      peerId: this.#transport.peerId,
      incarnation: this.#o.identity.incarnation,
      sentAt: this.#clock.wall(),
      config: this.#config.versioned(),
    })
  }

  /** A heartbeat shows the sender's config version: one older than ours gets ours. */
  #compareConfig(hb: Heartbeat): void {
    const mine = this.#config.current.stamp
    if (mine.version === 0) return
    const theirs = { version: hb.configVersion, hash: hb.configHash ?? '' }
    if (theirs.version === mine.version && theirs.hash === mine.hash) return
    if (newerConfig(mine, theirs) === mine) void this.#sendConfig()
  }

  electionView(members: readonly MemberView[] = this.members()): ElectionView {
    const holders = members
      .filter((m) => !m.self && m.state === 'alive' && m.election?.holder === true)
      .map((m) => m.id)
    if (this.#election.isMaster()) holders.push(this.id)
    return {
      ...this.#election.view(),
      vipHolders: holders.sort(),
      checks: this.#checks.views().map((c) => ({
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

  metrics(): Promise<MetricsText> {
    return this.#metrics.render()
  }

  master(): MasterResponse {
    const v = this.#election.view()
    return { master: this.#election.isMaster(), node: this.id, current: v.master, term: v.term }
  }

  health(): HealthResponse {
    return { status: 'ok', node: this.id, uptimeMs: Math.round(this.#clock.mono() - this.#startedAt) }
  }

  ready(): ReadyResponse {
    const reasons: string[] = []
    const m = this.#maintenance.state
    if (m !== null) reasons.push(`in maintenance${m.reason === null ? '' : `: ${m.reason}`}`)
    for (const f of this.#proxy.failed()) reasons.push(`listener ${f.name}: ${f.error}`)
    if (!this.#transport.started) reasons.push('gossip transport not started')
    else if (this.#o.config.node.join.length > 0 && this.#transport.connectedPeers().length === 0) {
      reasons.push('not connected to any peer yet (seeds are being dialled)')
    }
    return { ready: reasons.length === 0, reasons }
  }

  /** `GET /v1/maintenance` */
  maintenance(): MaintenanceView {
    return this.#maintenance.view()
  }

  /** `PUT /v1/maintenance`: see operator/maintenance.ts for what it does and in which order. */
  setMaintenance(body: MaintenancePutBody): Promise<Result<MaintenanceView>> {
    return this.#maintenance.set(body.enabled, body.reason)
  }

  /**
   * `POST /v1/members/{id}/remove`: a dead member stops counting here at once (the MASTER moves
   * the voters without it), and every node learns it from our heartbeats.
   */
  async removeMember(id: string): Promise<Result<MemberRemoveResponse>> {
    const listed = [
      ...this.#cluster.members.map((m) => m.id),
      ...(this.#election.view().voters?.voters ?? []),
    ]
    const r = checkRemovable(id, this.id, this.#membership, listed)
    if (!r.ok) return err(r.error)
    this.#membershipLog.warn(
      { member: id, incarnation: r.value.incarnation, code: 'operator' },
      `an operator removed member ${id}: it no longer counts toward quorum`,
    )
    this.#apply({ type: 'remove', id, incarnation: r.value.incarnation })
    this.#heartbeatSoon()
    await this.#election.settled()
    return ok({
      removed: id,
      incarnation: this.#membership.removed.get(id)?.incarnation ?? r.value.incarnation,
      voters: this.#election.view().voters?.voters ?? null,
    })
  }

  // ---- internals

  /**
   * A connection can outlive the path under it: after a partition TCP may sit in retransmission
   * backoff for many seconds, and gossipsub never retries a failed stream set-up. A member that has
   * been silent for `suspectTimeoutMs` while "connected" is hung up, and silent members are redialled
   * at their last known addresses, so the mesh heals as soon as the network does.
   */
  async #repairConnections(): Promise<void> {
    const running = this.#running
    if (running === null || !this.#transport.started) return
    for (const rec of this.#membership.members.values()) {
      if (rec.state !== 'suspect' && rec.state !== 'dead') continue
      if (this.#transport.isConnected(rec.peerId)) {
        this.#gossipLog.info(
          { member: rec.id, peer: rec.peerId },
          `hanging up silent member ${rec.id} to redial it`,
        )
        await this.#transport.hangUp(rec.peerId)
      }
      this.#transport.dialDiscovered(rec.peerId, rec.addrs, running.signal)
    }
    const silent = await this.#transport.hangUpSilentPeers(this.#o.config.cluster.gossip.subscribeGraceMs)
    if (silent.length > 0) this.#gossipLog.info({ peers: silent }, 'hung up peers whose gossip never started')
  }

  #heartbeatSoon(): void {
    if (this.#extraHeartbeat !== null) return
    this.#extraHeartbeat = setTimeout(() => {
      this.#extraHeartbeat = null
      this.#sendHeartbeat()
    }, EXTRA_HEARTBEAT_COALESCE_MS)
  }

  #sendHeartbeat(): void {
    if (this.#running === null || !this.#transport.started) return
    const hb: Heartbeat = {
      v: 1,
      kind: 'heartbeat',
      cluster: this.#o.config.cluster.name,
      node: this.id,
      peerId: this.#transport.peerId,
      incarnation: this.#o.identity.incarnation,
      sentAt: this.#clock.wall(),
      seq: ++this.#seq,
      priority: this.#o.config.node.priority,
      addrs: this.#transport.addresses().slice(0, 16),
      api: this.#apiAddress,
      configVersion: this.#config.current.stamp.version,
      ...(this.#config.current.stamp.version > 0 ? { configHash: this.#config.current.stamp.hash } : {}),
    }
    const election = this.#election.summary([...this.#checks.failing()])
    const now = this.#clock.mono()
    const databases =
      this.#cluster.databases.length === 0
        ? undefined
        : this.#databases.statuses().map((d) => ({
            name: d.name,
            state: d.state,
            timeline: d.timeline,
            lagBytes: d.lagBytes,
            ageMs: Number.isFinite(d.at) ? Math.max(0, Math.round(now - d.at)) : 600_000,
          }))
    const m = this.#maintenance.state
    const removed = removalsToGossip(this.#membership, now)
    void this.#publish({
      ...hb,
      ...(m === null ? {} : { maintenance: { reason: m.reason, since: m.since } }),
      ...(removed.length === 0 ? {} : { removed }),
      ...(election === undefined ? {} : { election }),
      ...(databases === undefined ? {} : { databases }),
    })
  }

  async #publish(msg: GossipMessage): Promise<void> {
    const bytes = encodeGossip(msg, this.#o.config.cluster.gossip.maxMessageBytes)
    if (!bytes.ok) {
      this.#gossipLog.error({ code: bytes.error.code, kind: msg.kind }, bytes.error.message)
      return
    }
    try {
      await this.#transport.publish(bytes.value)
      this.#messagesOut++
    } catch (e) {
      this.#gossipLog.debug({ err: e instanceof Error ? e.message : String(e) }, 'publish failed')
    }
  }

  #validate(data: Uint8Array, from: string): boolean {
    const r = decodeGossip(data, this.#o.config.cluster.gossip.maxMessageBytes)
    let code: string | null = null
    let detail = ''
    if (!r.ok) {
      code = r.error.code
      detail = r.error.message
    } else if (r.value.cluster !== this.#o.config.cluster.name) {
      code = 'GOSSIP_WRONG_CLUSTER'
      detail = `message for cluster '${r.value.cluster}'`
    } else if (r.value.peerId !== from) {
      code = 'GOSSIP_PEER_MISMATCH'
      detail = `message claims peer ${r.value.peerId} but was signed by ${from}`
    }
    if (code === null && r.ok) {
      this.#decoded.set(data, r.value)
      return true
    }
    this.#drop(code ?? 'GOSSIP_INVALID', from, `dropped gossip: ${detail}`, 'warn')
    return false
  }

  /** Counts a dropped message by code and logs it, rate-limited per peer and code. */
  #drop(code: string, from: string, message: string, level: 'warn' | 'debug'): void {
    this.#dropped[code] = (this.#dropped[code] ?? 0) + 1
    const suppressed = this.#dropLog.shouldLog(`${from}/${code}`, this.#clock.mono())
    if (suppressed !== null) this.#gossipLog[level]({ peer: from, code, suppressed }, message)
  }

  #onElectionFrame(peerId: string, data: Uint8Array): void {
    const from = this.#nodeByPeer.get(peerId)
    if (from === undefined) {
      // election traffic before the peer's first heartbeat (start-up): it will repeat
      this.#drop(
        'GOSSIP_UNKNOWN_PEER',
        peerId,
        'election frame from a peer not yet known by heartbeat',
        'debug',
      )
      return
    }
    const r = decodeElectionFrame(data)
    if (!r.ok) {
      this.#drop(r.error.code, peerId, `dropped election frame: ${r.error.message}`, 'warn')
      return
    }
    this.#election.deliver({ type: 'message', from, msg: r.value })
  }

  #sendElection(to: string, msg: ElectionMessage): void {
    const peer = this.#peerByNode.get(to)
    if (peer !== undefined) this.#transport.sendDirect(peer, encodeElectionFrame(msg))
  }

  #broadcastElection(msg: ElectionMessage): void {
    const frame = encodeElectionFrame(msg)
    for (const peer of this.#peerByNode.values()) this.#transport.sendDirect(peer, frame)
  }

  #warnAboutQuorum(): void {
    const { election, members } = this.#o.config.cluster
    if (election.quorum === 'none') {
      this.#electionLog.warn(
        'election quorum is "none" (Keepalived behaviour): under a network partition both sides hold the VIP (split brain). Use it only for 2-node pairs.',
      )
    } else if (members.length === 2) {
      this.#electionLog.warn(
        'a 2-member cluster with quorum "majority" cannot elect a MASTER while either member is down; add a third member or set quorum "none"',
      )
    }
  }

  /**
   * The election's member list: self, the founding members, and every member that has not left
   * (dead ones still count) and that no operator removed. A founding member not heard from yet is
   * still a member: dropping it from the voters because its first heartbeat is late would shrink
   * the quorum behind its back.
   */
  #syncElectionMembers(): void {
    const ids = new Set([this.id])
    for (const m of this.#cluster.members) {
      if (this.#membership.members.get(m.id)?.state !== 'left' && !this.#membership.removed.has(m.id)) {
        ids.add(m.id)
      }
    }
    for (const [id, rec] of this.#membership.members) {
      if (rec.state !== 'left') ids.add(id)
      if (this.#nodeByPeer.get(rec.peerId) !== id) {
        const oldPeer = this.#peerByNode.get(id)
        if (oldPeer !== undefined) this.#nodeByPeer.delete(oldPeer)
        this.#nodeByPeer.set(rec.peerId, id)
        this.#peerByNode.set(id, rec.peerId)
      }
    }
    const sorted = [...ids].sort()
    const key = sorted.join(',')
    if (key === this.#electionMembers) return
    this.#electionMembers = key
    this.#election.deliver({ type: 'members', ids: sorted })
  }

  #onMessage(data: Uint8Array, from: string): void {
    let msg = this.#decoded.get(data)
    if (msg === undefined) {
      if (!this.#validate(data, from)) return
      msg = this.#decoded.get(data)
      if (msg === undefined) return
    }
    this.#decoded.delete(data)
    this.#messagesIn++
    // our own earlier life (a restart keeps the peer id), echoed back by the mesh: not a conflict
    if (msg.peerId === this.#transport.peerId) return
    if (msg.kind === 'config') {
      const r = this.#config.offer(msg.config, msg.node)
      if (!r.ok) this.#drop(r.error.code, from, r.error.message, 'warn')
      return
    }
    if (msg.kind === 'heartbeat') {
      this.#compareConfig(msg)
      if (msg.removed !== undefined) this.#learnRemovals(msg.removed)
      this.#apply({ type: 'heartbeat', msg })
      if (msg.databases !== undefined) this.#router.observe(msg.node, msg.databases, this.#clock.mono())
      if (this.#running !== null) this.#transport.dialDiscovered(msg.peerId, msg.addrs, this.#running.signal)
    } else {
      this.#apply({ type: 'leave', msg })
    }
  }

  /** Removals relayed in a heartbeat. One naming this node means an operator removed it. */
  #learnRemovals(removed: NonNullable<Heartbeat['removed']>): void {
    for (const r of removed) {
      if (r.node !== this.id) {
        this.#apply({ type: 'remove', id: r.node, incarnation: r.incarnation, ageMs: r.ageMs })
      } else if (r.incarnation >= this.#o.identity.incarnation) {
        const suppressed = this.#dropLog.shouldLog('removed/self', this.#clock.mono())
        if (suppressed !== null) {
          this.#membershipLog.error(
            { incarnation: r.incarnation, suppressed },
            'an operator removed this node from the cluster: the others ignore it; restart it to rejoin',
          )
        }
      }
    }
  }

  #apply(event: MembershipEvent): void {
    const r = membershipStep(this.#membership, event, this.#clock.mono(), this.#cluster.membership)
    this.#membership = r.state
    for (const c of r.changes) this.#report(c)
    if (r.changes.length > 0) this.#syncElectionMembers()
  }

  #report(c: MembershipChange): void {
    const log = this.#membershipLog
    switch (c.type) {
      case 'state':
        log[c.to === 'alive' || c.to === 'left' ? 'info' : 'warn'](
          { member: c.id, from: c.from, to: c.to, incarnation: c.incarnation },
          `member ${c.id} is ${c.to}`,
        )
        break
      case 'removed':
        log.info(
          { member: c.id, reason: c.reason, incarnation: this.#membership.removed.get(c.id)?.incarnation },
          c.reason === 'operator'
            ? `member ${c.id} removed by an operator: it no longer counts toward quorum`
            : `member ${c.id} removed`,
        )
        break
      case 'idConflict': {
        const suppressed = this.#dropLog.shouldLog(`conflict/${c.peerId}`, this.#clock.mono())
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

function electionOptionsKey(o: ElectionOptions, vip: VipConfig): string {
  return canonicalJson({ checks: o.checks, election: o.config, vip })
}

function viewState(v: DbView): DbState {
  if (v.writable) return 'primary'
  if (!v.reachable) return 'down'
  return v.inRecovery ? 'replica' : 'up'
}
