import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { type ClusterStatus, VipConfigSchema } from '@pgmesh/protocol'
import { parseExposition, sampleValue } from '../../../test/helpers/prometheus.js'
import type { DbStatus } from '../database/database-monitor.js'
import type { VipDriver, VipState } from '../vip/vip-driver.js'
import { type MetricsSources, NodeMetrics } from './metrics.js'
import { countVipTransitions, type VipCounts } from './vip-counter.js'

function status(): ClusterStatus {
  return {
    cluster: 'c1',
    version: '0.1.0',
    self: 'n1',
    generatedAt: new Date(0).toISOString(),
    members: [],
    counts: { alive: 3, suspect: 0, dead: 1, left: 0 },
    gossip: {
      connectedPeers: 2,
      topicPeers: 2,
      messagesIn: 10,
      messagesOut: 7,
      dropped: { GOSSIP_WRONG_CLUSTER: 2 },
    },
    election: {
      quorum: 'majority',
      state: 'MASTER',
      role: 'leader',
      term: 4,
      master: 'n1',
      vipHolders: ['n1'],
      vip: { address: null, driver: 'none', held: true },
      leaseRemainingMs: 200,
      priority: 100,
      effectivePriority: 90,
      eligible: true,
      failingChecks: [],
      checks: [],
      voters: { voters: ['n1', 'n2', 'n3'], prev: null },
      masterChanges: 2,
    },
    removed: [],
    listeners: [
      {
        name: 'write',
        bind: '127.0.0.1:5000',
        role: 'servers',
        balance: 'roundrobin',
        active: 1,
        total: 5,
        queued: 2,
        refused: 1,
        queueTimeouts: 0,
        connectErrors: 3,
        cut: 0,
        backends: [
          {
            id: '127.0.0.1:6001',
            active: 1,
            total: 3,
            connectErrors: 2,
            bytesIn: 100,
            bytesOut: 1000,
            cut: 0,
          },
          { id: '127.0.0.1:6002', active: 0, total: 1, connectErrors: 1, bytesIn: 20, bytesOut: 200, cut: 1 },
        ],
      },
    ],
  }
}

function db(name: string, state: DbStatus['state'], at: number, writable: boolean): DbStatus {
  return {
    name,
    state,
    timeline: 1,
    lagBytes: null,
    at,
    postgres: { reachable: at > 0, writable, timeline: 1, lagBytes: null, error: null },
    patroni: null,
    tcp: null,
  }
}

function fixture() {
  const world = {
    status: status(),
    master: true,
    vip: { acquired: 1, acquireFailed: 0, released: 0, releaseFailed: 0 } as VipCounts,
    databases: [db('pg1', 'primary', 1, true), db('pg2', 'replica', 1, false)],
  }
  const sources: MetricsSources = {
    info: { node: 'n1', cluster: 'c1', version: '0.1.0' },
    status: () => world.status,
    isMaster: () => world.master,
    databases: () => world.databases,
    vip: () => world.vip,
  }
  return { world, metrics: new NodeMetrics(sources) }
}

async function scrape(m: NodeMetrics) {
  const r = await m.render()
  assert.match(r.contentType, /^text\/plain; version=0\.0\.4/)
  return parseExposition(r.body)
}

describe('node metrics', () => {
  it('renders parseable Prometheus text with the documented names, types and labels', async () => {
    const { metrics } = fixture()
    const { types, samples } = await scrape(metrics)
    const expected: Record<string, string> = {
      pgmesh_node_info: 'gauge',
      pgmesh_members: 'gauge',
      pgmesh_election_term: 'gauge',
      pgmesh_master: 'gauge',
      pgmesh_election_state: 'gauge',
      pgmesh_election_eligible: 'gauge',
      pgmesh_election_effective_priority: 'gauge',
      pgmesh_master_changes_total: 'counter',
      pgmesh_vip_held: 'gauge',
      pgmesh_vip_acquires_total: 'counter',
      pgmesh_vip_releases_total: 'counter',
      pgmesh_database_checks_total: 'counter',
      pgmesh_database_state: 'gauge',
      pgmesh_listener_connections: 'gauge',
      pgmesh_listener_connections_total: 'counter',
      pgmesh_listener_queued_connections: 'gauge',
      pgmesh_listener_sessions_cut_total: 'counter',
      pgmesh_listener_connection_errors_total: 'counter',
      pgmesh_listener_bytes_total: 'counter',
      pgmesh_backend_connections: 'gauge',
      pgmesh_backend_connections_total: 'counter',
      pgmesh_backend_connect_errors_total: 'counter',
      pgmesh_backend_sessions_cut_total: 'counter',
      pgmesh_backend_bytes_total: 'counter',
      pgmesh_gossip_connected_peers: 'gauge',
      pgmesh_gossip_topic_peers: 'gauge',
      pgmesh_gossip_messages_total: 'counter',
      pgmesh_gossip_dropped_total: 'counter',
    }
    for (const [name, type] of Object.entries(expected)) assert.equal(types.get(name), type, name)
    for (const t of types.keys()) assert.match(t, /^pgmesh_/, 'no default metrics unless asked for')

    assert.equal(sampleValue(samples, 'pgmesh_node_info', { node: 'n1', cluster: 'c1', version: '0.1.0' }), 1)
    assert.equal(sampleValue(samples, 'pgmesh_members', { state: 'alive' }), 3)
    assert.equal(sampleValue(samples, 'pgmesh_members', { state: 'dead' }), 1)
    assert.equal(sampleValue(samples, 'pgmesh_members', { state: 'left' }), 0)
    assert.equal(sampleValue(samples, 'pgmesh_election_term'), 4)
    assert.equal(sampleValue(samples, 'pgmesh_master'), 1)
    assert.equal(sampleValue(samples, 'pgmesh_election_state', { state: 'MASTER' }), 1)
    assert.equal(sampleValue(samples, 'pgmesh_election_state', { state: 'BACKUP' }), 0)
    assert.equal(sampleValue(samples, 'pgmesh_election_effective_priority'), 90)
    assert.equal(sampleValue(samples, 'pgmesh_master_changes_total'), 2)
    assert.equal(sampleValue(samples, 'pgmesh_vip_acquires_total', { result: 'ok' }), 1)
    assert.equal(sampleValue(samples, 'pgmesh_vip_releases_total', { result: 'failed' }), 0)
    assert.equal(sampleValue(samples, 'pgmesh_database_state', { database: 'pg1', state: 'primary' }), 1)
    assert.equal(sampleValue(samples, 'pgmesh_database_state', { database: 'pg1', state: 'replica' }), 0)
    assert.equal(sampleValue(samples, 'pgmesh_database_state', { database: 'pg2', state: 'replica' }), 1)
    assert.equal(sampleValue(samples, 'pgmesh_listener_connections', { listener: 'write' }), 1)
    assert.equal(sampleValue(samples, 'pgmesh_listener_connections_total', { listener: 'write' }), 5)
    assert.equal(sampleValue(samples, 'pgmesh_listener_queued_connections', { listener: 'write' }), 2)
    const err = (reason: string) =>
      sampleValue(samples, 'pgmesh_listener_connection_errors_total', { listener: 'write', reason })
    assert.deepEqual([err('refused'), err('queue_timeout'), err('connect_error')], [1, 0, 3])
    assert.equal(
      sampleValue(samples, 'pgmesh_listener_bytes_total', { listener: 'write', direction: 'in' }),
      120,
    )
    assert.equal(
      sampleValue(samples, 'pgmesh_listener_bytes_total', { listener: 'write', direction: 'out' }),
      1200,
    )
    const b1 = { listener: 'write', backend: '127.0.0.1:6001' }
    assert.equal(sampleValue(samples, 'pgmesh_backend_connections', b1), 1)
    assert.equal(sampleValue(samples, 'pgmesh_backend_connections_total', b1), 3)
    assert.equal(sampleValue(samples, 'pgmesh_backend_connect_errors_total', b1), 2)
    assert.equal(sampleValue(samples, 'pgmesh_backend_bytes_total', { ...b1, direction: 'out' }), 1000)
    assert.equal(
      sampleValue(samples, 'pgmesh_backend_sessions_cut_total', {
        listener: 'write',
        backend: '127.0.0.1:6002',
      }),
      1,
    )
    assert.equal(sampleValue(samples, 'pgmesh_gossip_messages_total', { direction: 'in' }), 10)
    assert.equal(sampleValue(samples, 'pgmesh_gossip_messages_total', { direction: 'out' }), 7)
    assert.equal(sampleValue(samples, 'pgmesh_gossip_dropped_total', { reason: 'GOSSIP_WRONG_CLUSTER' }), 2)
    assert.equal(sampleValue(samples, 'pgmesh_gossip_connected_peers'), 2)
  })

  it('tracks the snapshots between scrapes; series of a removed listener disappear', async () => {
    const { world, metrics } = fixture()
    await scrape(metrics)
    const s = status()
    world.status = {
      ...s,
      counts: { alive: 2, suspect: 1, dead: 1, left: 0 },
      election: { ...s.election, term: 5, state: 'BACKUP', masterChanges: 3 },
      gossip: { ...s.gossip, dropped: { ...s.gossip.dropped, GOSSIP_DECODE_FAILED: 4 } },
      listeners: [{ ...s.listeners[0]!, name: 'read', total: 9, backends: [] }],
    }
    world.master = false
    world.vip = { acquired: 1, acquireFailed: 0, released: 1, releaseFailed: 1 }
    world.databases = [db('pg1', 'down', 0, false)]
    // a new scrape in the same tick must not reuse the previous snapshot
    await new Promise((r) => setImmediate(r))
    const { samples } = await scrape(metrics)
    assert.equal(sampleValue(samples, 'pgmesh_members', { state: 'suspect' }), 1)
    assert.equal(sampleValue(samples, 'pgmesh_election_term'), 5)
    assert.equal(sampleValue(samples, 'pgmesh_master'), 0)
    assert.equal(sampleValue(samples, 'pgmesh_election_state', { state: 'BACKUP' }), 1)
    assert.equal(sampleValue(samples, 'pgmesh_election_state', { state: 'MASTER' }), 0)
    assert.equal(sampleValue(samples, 'pgmesh_master_changes_total'), 3)
    assert.equal(sampleValue(samples, 'pgmesh_vip_releases_total', { result: 'ok' }), 1)
    assert.equal(sampleValue(samples, 'pgmesh_vip_releases_total', { result: 'failed' }), 1)
    assert.equal(sampleValue(samples, 'pgmesh_gossip_dropped_total', { reason: 'GOSSIP_DECODE_FAILED' }), 4)
    assert.equal(sampleValue(samples, 'pgmesh_database_state', { database: 'pg1', state: 'down' }), 1)
    assert.equal(
      samples.filter((x) => x.labels.database === 'pg2' && x.name === 'pgmesh_database_state').length,
      0,
    )
    assert.equal(sampleValue(samples, 'pgmesh_listener_connections_total', { listener: 'read' }), 9)
    assert.equal(samples.filter((x) => x.labels.listener === 'write').length, 0)
  })

  it('listener policy: refusals by reason and the top limited sources only (bounded series)', async () => {
    const { world, metrics } = fixture()
    const s = status()
    const limited = Array.from({ length: 10 }, (_, i) => ({ source: `10.0.0.${i}`, refused: 100 - i }))
    world.status = {
      ...s,
      listeners: [
        {
          ...s.listeners[0]!,
          policy: {
            refused: {
              denied: 3,
              notAllowed: 1,
              overConnections: 0,
              overRate: 7,
              proxyUntrusted: 0,
              proxyMissing: 0,
              proxyInvalid: 0,
            },
            rules: [],
            ruleCount: 2,
            limited,
            trackedSources: 55,
            connectedSources: 4,
            stick: { entries: 9, maxEntries: 100, recent: [] },
          },
        },
      ],
    }
    const { samples } = await scrape(metrics)
    const l = s.listeners[0]!.name
    assert.equal(
      sampleValue(samples, 'pgmesh_listener_policy_refused_total', { listener: l, reason: 'overRate' }),
      7,
    )
    assert.equal(
      sampleValue(samples, 'pgmesh_listener_policy_refused_total', { listener: l, reason: 'denied' }),
      3,
    )
    assert.equal(
      sampleValue(samples, 'pgmesh_listener_limited_source_refusals', {
        listener: l,
        rank: '1',
        source: '10.0.0.0',
      }),
      100,
    )
    assert.equal(samples.filter((x) => x.name === 'pgmesh_listener_limited_source_refusals').length, 10)
    assert.equal(sampleValue(samples, 'pgmesh_listener_policy_sources', { listener: l, table: 'sticky' }), 9)
  })

  it("exports a terminating listener's edge events", async () => {
    const { world, metrics } = fixture()
    const s = status()
    const edge = {
      tlsSessions: 4,
      tlsFailures: 1,
      handshakeTimeouts: 2,
      plainRefused: 3,
      badStartup: 5,
      cancelsForwarded: 6,
      cancelsDropped: 7,
      backendTlsFailures: 8,
    }
    const notAfter = '2027-01-02T03:04:05.000Z'
    world.status = {
      ...s,
      listeners: [
        {
          ...s.listeners[0]!,
          name: 'tls',
          edge,
          tls: {
            mode: 'terminate',
            backend: 'plain',
            certificate: {
              subject: 'CN=edge',
              notAfter,
              fingerprint256: 'AA',
              expiresInMs: 1,
              expiryWarning: true,
            },
          },
        },
      ],
    }
    const { types, samples } = await scrape(metrics)
    assert.equal(types.get('pgmesh_listener_edge_events_total'), 'counter')
    const ev = (event: string) =>
      sampleValue(samples, 'pgmesh_listener_edge_events_total', { listener: 'tls', event })
    assert.deepEqual(
      [
        'tls_session',
        'tls_failure',
        'handshake_timeout',
        'plain_refused',
        'bad_startup',
        'cancel_forwarded',
        'cancel_dropped',
        'backend_tls_failure',
      ].map(ev),
      [4, 1, 2, 3, 5, 6, 7, 8],
    )
  })

  it('reports the config version and the edits that lost to a concurrent one', async () => {
    const { world, metrics } = fixture()
    const before = (await scrape(metrics)).samples
    assert.equal(sampleValue(before, 'pgmesh_config_conflicts'), 0, 'no config yet: 0')
    world.status = {
      ...status(),
      config: { version: 7, hash: 'h', origin: 'n2', pendingRestart: [], conflicts: 2 },
    }
    await new Promise((r) => setImmediate(r))
    const { samples } = await scrape(metrics)
    assert.equal(sampleValue(samples, 'pgmesh_config_version'), 7)
    assert.equal(sampleValue(samples, 'pgmesh_config_conflicts'), 2)
  })

  it('TLS certificate expiry: one series per TLS listener, none without TLS listeners', async () => {
    const { metrics } = fixture()
    const none = (await scrape(metrics)).samples
    assert.equal(none.filter((x) => x.name === 'pgmesh_tls_certificate_expiry_seconds').length, 0)
    const { world } = fixture()
    const notAfterMs = Date.UTC(2027, 0, 31, 12, 0, 0, 500)
    const m = new NodeMetrics({
      info: { node: 'n1', cluster: 'c1', version: '0' },
      status: () => world.status,
      isMaster: () => false,
      databases: () => [],
      vip: () => world.vip,
      certificates: () => [{ listener: 'write', notAfterMs }],
    })
    const { types, samples } = await scrape(m)
    assert.equal(types.get('pgmesh_tls_certificate_expiry_seconds'), 'gauge')
    assert.equal(
      sampleValue(samples, 'pgmesh_tls_certificate_expiry_seconds', { listener: 'write' }),
      Math.floor(notAfterMs / 1000),
    )
  })

  it('counts each database probe round once, by what the round saw', async () => {
    const { world, metrics } = fixture()
    const round = () => {
      for (const d of world.databases) metrics.countCheckRound(d)
    }
    round()
    world.databases = [db('pg1', 'primary', 2, true), db('pg2', 'replica', 2, false)]
    round()
    // the confirmed state stays primary (fall not reached) while the round already saw it down
    world.databases = [
      { ...db('pg1', 'primary', 3, false), postgres: null, tcp: { reachable: false, error: 'x' } },
    ]
    round()
    const { samples } = await scrape(metrics)
    const checks = (database: string, result: string) =>
      sampleValue(samples, 'pgmesh_database_checks_total', { database, result })
    assert.equal(checks('pg1', 'primary'), 2)
    assert.equal(checks('pg1', 'down'), 1)
    assert.equal(checks('pg2', 'replica'), 2)
  })

  it('kernel fast path: each listener’s path, forwarded connections and sessions per backend', async () => {
    const { world, metrics } = fixture()
    const before = await scrape(metrics)
    assert.equal(
      before.samples.filter((x) => x.name.startsWith('pgmesh_fastpath_') && x.labels.listener !== undefined)
        .length,
      0,
      'no listener series without kernel listeners',
    )
    world.status = {
      ...status(),
      fastPath: {
        available: true,
        table: 'pgmesh_fast_x',
        updates: 4,
        cuts: 2,
        listeners: [
          { name: 'write', path: 'kernel', targets: ['pg1'], newConnections: 120, sessions: { pg1: 7 } },
          { name: 'read', path: 'node', targets: [], newConnections: 3, sessions: {} },
        ],
      },
    }
    await new Promise((r) => setImmediate(r))
    const { types, samples } = await scrape(metrics)
    assert.equal(types.get('pgmesh_fastpath_connections_total'), 'counter')
    assert.equal(sampleValue(samples, 'pgmesh_fastpath_kernel', { listener: 'write' }), 1)
    assert.equal(sampleValue(samples, 'pgmesh_fastpath_kernel', { listener: 'read' }), 0)
    assert.equal(sampleValue(samples, 'pgmesh_fastpath_connections_total', { listener: 'write' }), 120)
    assert.equal(sampleValue(samples, 'pgmesh_fastpath_sessions', { listener: 'write', backend: 'pg1' }), 7)
    assert.equal(sampleValue(samples, 'pgmesh_fastpath_rule_updates_total'), 4)
    assert.equal(sampleValue(samples, 'pgmesh_fastpath_sessions_cut_total'), 2)
  })

  it("adds prom-client's process and runtime metrics when asked", async () => {
    const { world } = fixture()
    const m = new NodeMetrics({
      info: { node: 'n1', cluster: 'c1', version: '0' },
      status: () => world.status,
      isMaster: () => false,
      databases: () => [],
      vip: () => world.vip,
      defaultMetrics: true,
    })
    const { types, samples } = await scrape(m)
    for (const name of [
      'process_resident_memory_bytes',
      'process_cpu_seconds_total',
      'nodejs_eventloop_lag_seconds',
    ]) {
      assert.ok(types.has(name), name)
    }
    assert.ok(sampleValue(samples, 'process_resident_memory_bytes') > 0)
  })
})

describe('VIP transition counter', () => {
  function fakeDriver(fail: Set<VipState>): VipDriver & { entered: VipState[] } {
    const entered: VipState[] = []
    return {
      kind: 'none',
      entered,
      start: async () => undefined,
      enter: async (s) => {
        entered.push(s)
        if (fail.has(s)) throw new Error(`cannot enter ${s}`)
      },
      announce: () => undefined,
      holds: () => entered.at(-1) === 'MASTER',
      reconfigure: async () => {
        entered.push('reconfigure' as VipState)
      },
      stop: async () => undefined,
    }
  }

  it('counts acquisitions and releases of the VIP, and failures of either; other moves are not releases', async () => {
    const fail = new Set<VipState>()
    const inner = fakeDriver(fail)
    const d = countVipTransitions(inner)
    await d.enter('BACKUP')
    await d.enter('FAULT')
    await d.enter('MASTER')
    assert.equal(d.holds(), true)
    await d.enter('BACKUP')
    fail.add('MASTER')
    await assert.rejects(d.enter('MASTER'))
    fail.add('STOP')
    await assert.rejects(d.enter('STOP'))
    await d.enter('FAULT')
    assert.deepEqual(d.counts(), { acquired: 1, acquireFailed: 1, released: 1, releaseFailed: 1 })
    assert.deepEqual(inner.entered, ['BACKUP', 'FAULT', 'MASTER', 'BACKUP', 'MASTER', 'STOP', 'FAULT'])
    assert.equal(d.kind, 'none')
  })

  it('passes reconfigure through, and quiesce only when the driver has it', async () => {
    const inner = fakeDriver(new Set())
    const d = countVipTransitions(inner)
    await d.reconfigure(VipConfigSchema.parse({}))
    assert.deepEqual(inner.entered, ['reconfigure'])
    assert.equal(d.quiesce, undefined)
    const calls: string[] = []
    const linux = countVipTransitions({
      ...inner,
      quiesce: async () => void calls.push('quiesce'),
      unquiesce: async () => void calls.push('unquiesce'),
    })
    await linux.quiesce?.()
    await linux.unquiesce?.()
    assert.deepEqual(calls, ['quiesce', 'unquiesce'])
    assert.deepEqual(linux.counts(), { acquired: 0, acquireFailed: 0, released: 0, releaseFailed: 0 })
  })
})
