import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { validateClusterConfig, validateConfig } from '@pgmesh/protocol'
import fc from 'fast-check'
import { parse } from 'yaml'
import { type ImportInput, importConfig } from './import-config.js'
import type { ImportNote } from './report.js'

const fixture = (name: string) =>
  readFileSync(new URL(`../../../test/fixtures/import/${name}`, import.meta.url), 'utf8')

function imported(input: ImportInput) {
  const r = importConfig(input)
  assert.ok(r.ok, r.ok ? '' : `${r.error.message}\n${JSON.stringify(r.error.issues, null, 2)}`)
  // what `pgmesh config check` and `pgmesh start` would read: the YAML, not the in-memory document
  const doc: unknown = parse(r.value.yaml)
  const whole = validateConfig(doc)
  assert.ok(whole.ok, whole.ok ? '' : JSON.stringify(whole.error.issues))
  assert.ok(validateClusterConfig((doc as { cluster: unknown }).cluster).ok)
  return { ...r.value, config: whole.value }
}

const noteAt = (notes: readonly ImportNote[], source: ImportNote['source'], line: number) => {
  const n = notes.find((x) => x.source === source && x.line === line)
  assert.ok(
    n !== undefined,
    `no note for ${source} line ${line}: ${JSON.stringify(notes.map((x) => [x.source, x.line]))}`,
  )
  return n
}

function failure(input: ImportInput): { code: string; message: string } {
  const r = importConfig(input)
  assert.equal(r.ok, false, 'expected the import to fail')
  return (r as { ok: false; error: { code: string; message: string } }).error
}

describe('pgmesh import: the Percona haproxy.cfg for Patroni', () => {
  const haproxy = fixture('haproxy-percona.cfg')
  const r = imported({ haproxy, nodeId: 'proxy-1' })

  it('/primary and /replica checks become role listeners over the Patroni servers', () => {
    const [write, read] = r.config.cluster.listeners
    assert.equal(r.config.cluster.listeners.length, 2, 'the http stats section is no listener')
    assert.deepEqual(
      [write!.name, write!.role, `${write!.bind.host}:${write!.bind.port}`],
      ['primary', 'primary', '0.0.0.0:5000'],
    )
    assert.deepEqual(
      [read!.name, read!.role, read!.balance, read!.bind.port],
      ['standbys', 'replica', 'roundrobin', 5001],
    )
    assert.equal(write!.servers.length, 0)
    // timeout connect 4s; the idle timeout is the shorter of client and server (30m)
    assert.equal(write!.connectTimeoutMs, 4000)
    assert.equal(write!.idleTimeoutMs, 1_800_000)
  })

  it('each server becomes one database (shared by both listeners) with Patroni on its check port', () => {
    assert.deepEqual(
      r.config.cluster.databases.map((d) => [
        d.name,
        `${d.address.host}:${d.address.port}`,
        d.patroniUrl,
        d.maxconn,
      ]),
      [
        ['node1', '10.0.1.1:5432', 'http://10.0.1.1:8008', 100],
        ['node2', '10.0.1.2:5432', 'http://10.0.1.2:8008', 100],
        ['node3', '10.0.1.3:5432', 'http://10.0.1.3:8008', 100],
      ],
    )
    assert.deepEqual(r.config.cluster.databaseChecks.use, ['postgres', 'patroni'])
  })

  it('reports what it left out, with the line and the reason', () => {
    assert.match(noteAt(r.notes, 'haproxy', 5).reason, /process-wide/) // global maxconn
    assert.match(noteAt(r.notes, 'haproxy', 11).reason, /retries on its own terms/) // retries 2
    assert.match(noteAt(r.notes, 'haproxy', 17).reason, /mode http/) // listen stats
    const timings = noteAt(r.notes, 'haproxy', 27)
    assert.equal(timings.directive, 'default-server inter 3s fall 3 rise 2 on-marked-down shutdown-sessions')
    assert.match(timings.reason, /check timings/)
    assert.doesNotMatch(timings.reason, /on-marked-down/, 'shutdown-sessions is what pgmesh always does')
    assert.equal(noteAt(r.notes, 'haproxy', 35).kind, 'review') // replica falls back to the primary
    // every directive line is either carried over or reported
    for (const line of [24, 25, 26, 28])
      assert.ok(!r.notes.some((n) => n.line === line), `line ${line} was mapped`)
  })

  it('writes YAML headed by the review notes', () => {
    assert.match(r.yaml, /^# pgmesh config written by `pgmesh import`/)
    assert.match(r.yaml, /# {3}haproxy\.cfg:35: role replica/)
  })
})

describe('pgmesh import: keepalived.conf with track scripts and unicast peers', () => {
  const haproxy = fixture('haproxy-percona.cfg')
  const keepalived = fixture('keepalived-track.conf')
  const r = imported({
    haproxy,
    keepalived,
    members: [
      { id: 'proxy2', priority: 105 },
      { id: 'proxy3', priority: 100 },
    ],
  })

  it('router_id, priority, interface, VIP and unicast peers fill the node section', () => {
    const n = r.config.node
    assert.equal(n.id, 'proxy1')
    assert.equal(n.priority, 110)
    assert.equal(n.vip.interface, 'eth0')
    assert.deepEqual(
      n.join.map((j) => `${j.host}:${j.port}`),
      ['10.0.0.12:7946', '10.0.0.13:7946'],
    )
    assert.equal(`${n.gossip.advertise?.host}:${n.gossip.advertise?.port}`, '10.0.0.11:7946')
    assert.equal(r.config.cluster.vip.address?.cidr, '10.0.0.100/24')
    assert.equal(r.config.cluster.vip.driver, 'linux')
    assert.deepEqual(r.config.cluster.members, [
      { id: 'proxy1', priority: 110 },
      { id: 'proxy2', priority: 105 },
      { id: 'proxy3', priority: 100 },
    ])
  })

  it('track scripts keep their weights; the HAProxy check becomes a check of pgmesh itself', () => {
    const [haproxyCheck, maint] = r.config.cluster.checks
    assert.deepEqual(haproxyCheck && { ...haproxyCheck }, {
      name: 'chk_haproxy',
      kind: 'tcp',
      host: '127.0.0.1',
      port: 5000,
      intervalMs: 2000,
      timeoutMs: 2000,
      rise: 2,
      fall: 2,
      weight: -20,
    })
    assert.equal(maint?.kind, 'exec')
    assert.deepEqual(maint?.kind === 'exec' ? maint.command : null, [
      '/usr/bin/test',
      '!',
      '-e',
      '/etc/keepalived/maintenance',
    ])
    assert.equal(maint?.weight, 0, 'the track_script override `weight 0` wins over the script')
    assert.match(noteAt(r.notes, 'keepalived', 9).reason, /checks HAProxy/)
  })

  it('preempt_delay, notify scripts and advert_int map to election and VIP settings', () => {
    assert.equal(r.config.cluster.election.preemptDelayMs, 10_000)
    assert.equal(r.config.cluster.election.nopreempt, false)
    assert.equal(r.config.cluster.election.leaseMs, 250, 'advert_int 1 keeps the faster defaults')
    assert.deepEqual(r.config.cluster.vip.notify.master, ['/etc/keepalived/notify.sh', 'master'])
    assert.deepEqual(r.config.cluster.vip.notify.fault, ['/etc/keepalived/notify.sh', 'fault'])
    assert.match(noteAt(r.notes, 'keepalived', 30).reason, /cluster secret/) // authentication
    assert.match(noteAt(r.notes, 'keepalived', 40).reason, /label eth0:vip/)
  })

  it('members come out in the same order on every host (by priority), so the cluster sections match', () => {
    const on2 = imported({
      keepalived: keepalived
        .replace('router_id proxy1', 'router_id proxy2')
        .replace('priority 110', 'priority 105'),
      members: [
        { id: 'proxy1', priority: 110 },
        { id: 'proxy3', priority: 100 },
      ],
    })
    assert.deepEqual(on2.config.cluster.members, r.config.cluster.members)
  })

  it('without --member the report says the cluster has no founding member', () => {
    const alone = imported({ keepalived })
    assert.deepEqual(alone.config.cluster.members, [])
    assert.ok(alone.notes.some((n) => n.kind === 'review' && /cluster\.members is empty/.test(n.reason)))
    const e = failure({ keepalived, members: [{ id: 'proxy1', priority: 5 }] })
    assert.match(e.message, /this node's priority is 110/)
  })
})

describe('pgmesh import: nopreempt, a slow advert_int, a generic notify, two instances', () => {
  const r = imported({ keepalived: fixture('keepalived-slow.conf') })

  it("maps nopreempt, a weight-0 check, and the first VIP with Keepalived's /32", () => {
    assert.equal(r.config.node.id, 'lb-2.example')
    assert.equal(r.config.cluster.election.nopreempt, true)
    assert.equal(r.config.cluster.vip.address?.cidr, '192.168.7.100/32')
    assert.equal(r.config.node.vip.interface, 'ens3')
    assert.deepEqual(
      r.config.cluster.checks.map((c) => [c.name, c.kind, c.intervalMs, c.weight]),
      [['chk_port', 'exec', 3000, 0]],
    )
    assert.deepEqual(
      r.config.node.join.map((j) => j.host),
      ['192.168.7.1', '192.168.7.3'],
    )
  })

  it("a slow advert_int slows the election by the same factor, within the validator's rules", () => {
    const e = r.config.cluster.election
    assert.deepEqual(
      [e.heartbeatIntervalMs, e.leaseMs, e.electionTimeoutMinMs, e.electionTimeoutMaxMs, e.maxClockDriftMs],
      [150, 750, 900, 1200, 30],
    )
  })

  it('the generic notify script serves every state; the second instance is reported', () => {
    const n = r.config.cluster.vip.notify
    assert.deepEqual(
      [n.master, n.backup, n.fault],
      [['/usr/local/bin/vip-notify'], ['/usr/local/bin/vip-notify'], ['/usr/local/bin/vip-notify']],
    )
    assert.match(noteAt(r.notes, 'keepalived', 32).reason, /INSTANCE name STATE priority/)
    assert.match(noteAt(r.notes, 'keepalived', 35).reason, /one VIP per cluster/)
    assert.match(noteAt(r.notes, 'keepalived', 4).reason, /process setting/) // notification_email
  })
})

describe('pgmesh import: frontend/backend pairs, HAProxy 2.2 checks, plain TCP', () => {
  const r = imported({ haproxy: fixture('haproxy-frontends.cfg'), nodeId: 'p1' })
  const byName = new Map(r.config.cluster.listeners.map((l) => [l.name, l]))

  it('a frontend and its default_backend make one listener; `http-check send uri /master` is primary', () => {
    const w = byName.get('pg_write')!
    assert.equal(w.role, 'primary')
    // a host's own address stays this node's; the cluster section binds the same on every host
    assert.equal(`${w.bind.host}:${w.bind.port}`, '0.0.0.0:5432')
    const own = r.config.node.listenerBinds.pg_write
    assert.equal(`${own?.host}:${own?.port}`, '10.0.0.10:5432')
    assert.match(noteAt(r.notes, 'haproxy', 15).reason, /node\.listenerBinds\.pg_write/)
    assert.equal(w.maxconn, 500)
    assert.equal(w.balance, 'leastconn', 'from defaults')
    assert.equal(w.queueTimeoutMs, 20_000)
    assert.equal(w.idleTimeoutMs, 45 * 60_000, 'the shorter of client 1h and server 45m')
    assert.equal(
      r.config.cluster.databases.find((d) => d.name === 'pg-a')?.patroniUrl,
      'https://10.0.0.21:8008',
    )
  })

  it('/replica?lag=16MB bounds replica lag; backup servers are reported, not routed to', () => {
    const rd = byName.get('pg_read')!
    assert.equal(rd.role, 'replica')
    assert.equal(rd.replicaMaxLagBytes, 16 * 1024 * 1024)
    assert.equal(`${rd.bind.host}:${rd.bind.port}`, '0.0.0.0:5433')
    assert.ok(!r.config.cluster.databases.some((d) => d.name === 'pg-c'))
    assert.match(noteAt(r.notes, 'haproxy', 34).reason, /backup servers/)
  })

  it('a listen section without a Patroni check is a server list', () => {
    const b = byName.get('pgbouncer')!
    assert.equal(b.role, 'servers')
    assert.equal(b.balance, 'source')
    assert.deepEqual(
      b.servers.map((s) => `${s.address.host}:${s.address.port}`),
      ['10.0.0.31:6432', '10.0.0.32:6432'],
    )
    assert.match(noteAt(r.notes, 'haproxy', 39).reason, /no health checks/) // option tcp-check
    assert.match(noteAt(r.notes, 'haproxy', 43).reason, /no frontend uses it/) // backend unused
    assert.match(noteAt(r.notes, 'haproxy', 4).reason, /process-wide/) // stats socket
  })
})

describe('pgmesh import: details', () => {
  it('a reverse weight leaves the check out, with a note at the track_script line', () => {
    const keepalived = [
      'vrrp_script a {',
      '  script "/bin/true"',
      '  weight -10 reverse',
      '}',
      'vrrp_script b {',
      '  script "/bin/true"',
      '}',
      'vrrp_script unused {',
      '  script "/bin/true"',
      '}',
      'vrrp_instance V {',
      '  priority 100',
      '  track_script {',
      '    a',
      '    b weight 5',
      '  }',
      '}',
    ].join('\n')
    const r = imported({ keepalived, nodeId: 'n1' })
    assert.deepEqual(
      r.config.cluster.checks.map((c) => [c.name, c.weight]),
      [['b', 5]],
    )
    assert.match(noteAt(r.notes, 'keepalived', 14).reason, /'reverse' weight/)
    assert.match(noteAt(r.notes, 'keepalived', 8).reason, /not tracked/)
    assert.ok(
      !r.notes.some((n) => n.line === 1 && /not tracked/.test(n.reason)),
      'a is tracked, only reversed',
    )
  })

  it('a bind to the VIP becomes a bind to all addresses: every node serves the listener', () => {
    const haproxy = 'listen primary\n  bind 10.0.0.100:5000\n  server s 10.0.0.1:5432\n'
    const keepalived =
      'vrrp_instance V {\n  interface eth0\n  priority 100\n  virtual_ipaddress {\n    10.0.0.100/24\n  }\n}\n'
    const r = imported({ haproxy, keepalived, nodeId: 'n1' })
    const [l] = r.config.cluster.listeners
    assert.equal(`${l!.bind.host}:${l!.bind.port}`, '0.0.0.0:5000')
    assert.deepEqual(r.config.node.listenerBinds, {})
    assert.match(noteAt(r.notes, 'haproxy', 2).reason, /bound to the VIP/)
  })

  it('keeps host names of servers, as the Percona documentation writes them', () => {
    const haproxy =
      'listen primary\n  bind *:5000\n  option httpchk /primary\n  server node1 node1:5432 check port 8008\n'
    const r = imported({ haproxy, nodeId: 'n1' })
    assert.deepEqual(
      r.config.cluster.databases.map((d) => [d.name, d.address.host, d.patroniUrl]),
      [['node1', 'node1', 'http://node1:8008']],
    )
  })

  it('reads IPv6 binds and servers, and HAProxy time units', () => {
    const haproxy = [
      'defaults',
      '  timeout connect 1500ms',
      '  timeout client 2h',
      '  timeout server 1d',
      'listen a',
      '  bind :::5000',
      '  server s1 [fd00::1]:5432 check port 8008',
      '  server s2 fd00::2 check port 8008',
      '  option httpchk OPTIONS /primary',
      'listen b',
      '  bind ipv6@[::1]:5001',
      '  server r 10.0.0.5:6432',
    ].join('\n')
    const r = imported({ haproxy, nodeId: 'n1' })
    const [a, b] = r.config.cluster.listeners
    assert.deepEqual(
      [a!.bind.host, a!.bind.port, a!.connectTimeoutMs, a!.idleTimeoutMs],
      ['::', 5000, 1500, 7_200_000],
    )
    assert.deepEqual([b!.bind.host, b!.bind.port], ['::', 5001])
    assert.equal(r.config.node.listenerBinds.b?.host, '::1')
    assert.deepEqual(
      r.config.cluster.databases.map((d) => [d.address.host, d.address.port, d.patroniUrl]),
      [
        ['fd00::1', 5432, 'http://[fd00::1]:8008'],
        ['fd00::2', 5000, 'http://[fd00::2]:8008'],
      ],
    )
    assert.match(noteAt(r.notes, 'haproxy', 8).reason, /no port: HAProxy uses the client's destination port/)
  })
})

describe('pgmesh import: malformed input is a clear error with the line', () => {
  const cases: [string, ImportInput, RegExp][] = [
    [
      'bad time',
      { haproxy: 'listen a\n  bind :5000\n  timeout connect 4x\n  server s 10.0.0.1:1\n', nodeId: 'n' },
      /haproxy\.cfg line 3: 'timeout connect 4x': '4x' is not a time/,
    ],
    [
      'bind without port',
      { haproxy: 'listen a\n  bind 10.0.0.1\n', nodeId: 'n' },
      /haproxy\.cfg line 2: .*not an address with a port/,
    ],
    [
      'server without address',
      { haproxy: 'listen a\n  bind :1\n  server s\n', nodeId: 'n' },
      /haproxy\.cfg line 3: .*needs a name and an address/,
    ],
    [
      'bad server port',
      { haproxy: 'listen a\n  bind :1\n  server s 10.0.0.1:99999\n', nodeId: 'n' },
      /haproxy\.cfg line 3: .*not a host or host:port/,
    ],
    [
      'bad check port',
      { haproxy: 'listen a\n  bind :1\n  server s 10.0.0.1:5 check port x\n', nodeId: 'n' },
      /haproxy\.cfg line 3: .*port 'x'/,
    ],
    ['bad mode', { haproxy: 'defaults\n  mode udp\n', nodeId: 'n' }, /haproxy\.cfg line 2: .*mode 'udp'/],
    [
      'unknown track script',
      { keepalived: 'vrrp_instance V {\n  priority 100\n  track_script {\n    nope\n  }\n}\n', nodeId: 'n' },
      /keepalived\.conf line 4: 'nope': track_script names 'nope'/,
    ],
    [
      'bad priority',
      { keepalived: 'vrrp_instance V {\n  priority high\n}\n', nodeId: 'n' },
      /keepalived\.conf line 2: 'priority high': priority must be 1-255/,
    ],
    [
      'bad VIP',
      {
        keepalived: 'vrrp_instance V {\n  interface eth0\n  virtual_ipaddress {\n    10.0.0.300/24\n  }\n}\n',
        nodeId: 'n',
      },
      /keepalived\.conf line 4: .*not an IP address/,
    ],
    [
      'bad peer',
      { keepalived: 'vrrp_instance V {\n  unicast_peer {\n    host-b\n  }\n}\n', nodeId: 'n' },
      /keepalived\.conf line 3: .*not an IP address/,
    ],
    [
      'script without command',
      { keepalived: 'vrrp_script c {\n  interval 2\n}\n', nodeId: 'n' },
      /keepalived\.conf line 1: .*has no script/,
    ],
    [
      'bad advert_int',
      { keepalived: 'vrrp_instance V {\n  advert_int soon\n}\n', nodeId: 'n' },
      /keepalived\.conf line 2: .*advert_int/,
    ],
    [
      'unclosed block',
      { keepalived: 'vrrp_instance V {\n  priority 100\n', nodeId: 'n' },
      /keepalived\.conf line 1: '\{' is never closed/,
    ],
  ]
  for (const [what, input, re] of cases) {
    it(what, () => {
      const e = failure(input)
      assert.match(e.code, /^IMPORT_(PARSE|INVALID)$/)
      assert.match(e.message, re)
    })
  }

  it('no node id and no input are errors too', () => {
    assert.match(failure({ haproxy: 'listen a\n  bind :1\n  server s 10.0.0.1:5\n' }).message, /--node-id/)
    assert.match(failure({}).message, /nothing to import/)
  })

  it('inconsistent input that maps cleanly but does not validate is reported with the schema paths', () => {
    const r = importConfig({
      haproxy:
        'listen a\n  bind :5000\n  server s 10.0.0.1:5\nlisten b\n  bind :5000\n  server t 10.0.0.2:5\n',
      nodeId: 'n',
    })
    assert.equal(r.ok, false)
    if (r.ok) return
    assert.equal(r.error.code, 'IMPORT_INVALID')
    assert.ok(r.error.issues?.some((i) => /used twice/.test(i.message)))
  })
})

describe('pgmesh import: never throws', () => {
  const haproxyLines = fixture('haproxy-frontends.cfg').split('\n')
  const keepalivedLines = fixture('keepalived-track.conf').split('\n')
  const word = fc.constantFrom(
    '',
    ' ',
    '{',
    '}',
    '"',
    '#',
    ':',
    '/',
    'x',
    '-1',
    '99999',
    '0',
    'check',
    'port',
    'weight',
    '1.5',
    '::',
    '*',
  )

  /** a fixture with some lines dropped, swapped, or given an extra word */
  const mutated = (lines: readonly string[]) =>
    fc.array(fc.tuple(fc.nat(lines.length), fc.nat(3), word), { maxLength: 12 }).map((edits) => {
      const out = [...lines]
      for (const [i, op, w] of edits) {
        if (op === 0) out.splice(i, 1)
        else if (op === 1) out.splice(i, 0, out[(i * 7) % out.length] ?? '')
        else out[i] = `${out[i] ?? ''} ${w}`
      }
      return out.join('\n')
    })

  it('on mutated configs: a config that validates, or an IMPORT_* error', () => {
    fc.assert(
      fc.property(mutated(haproxyLines), mutated(keepalivedLines), (haproxy, keepalived) => {
        const r = importConfig({ haproxy, keepalived, nodeId: 'n1' })
        if (r.ok) assert.ok(validateConfig(parse(r.value.yaml)).ok)
        else assert.match(r.error.code, /^IMPORT_/)
      }),
      { numRuns: 300 },
    )
  })

  it('on random text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), fc.string({ maxLength: 300 }), (haproxy, keepalived) => {
        const r = importConfig({ haproxy, keepalived, nodeId: 'n1' })
        if (!r.ok) assert.match(r.error.code, /^IMPORT_/)
      }),
      { numRuns: 300 },
    )
  })
})
