import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { BackendsView, ClusterStatus, EventsView, MemberView } from '@pgmesh/protocol'
import { createControlApi } from './app.js'
import type { ClusterSource } from './cluster-source.js'
import { escapeHtml, renderStatusPage } from './status-page.js'

const EVIL = '<script>alert(1)</script>'

function member(
  id: string,
  state: MemberView['state'],
  priority: number,
  effective: number | null,
): MemberView {
  return {
    id,
    peerId: `peer-${id}`,
    self: id === 'n2',
    state,
    priority,
    incarnation: 1,
    addrs: [],
    api: null,
    lastHeardAt: null,
    lastHeardAgoMs: id === 'n2' ? null : 120,
    stateSince: new Date(0).toISOString(),
    configVersion: 0,
    maintenance: null,
    election:
      effective === null
        ? null
        : {
            term: 3,
            effectivePriority: effective,
            eligible: true,
            holder: id === 'n1',
            leader: 'n1',
            failingChecks: effective < priority ? ['"pg-ok"'] : [],
          },
  }
}

function status(): ClusterStatus {
  return {
    cluster: 'prod&co',
    version: '0.1.0',
    self: 'n2',
    generatedAt: '2024-01-01T00:00:00.000Z',
    members: [
      member('n1', 'alive', 110, 110),
      member('n2', 'alive', 105, 85),
      member(EVIL, 'suspect', 100, null),
    ],
    counts: { alive: 2, suspect: 1, dead: 0, left: 0 },
    gossip: { connectedPeers: 2, topicPeers: 2, messagesIn: 10, messagesOut: 9, dropped: {} },
    election: {
      quorum: 'majority',
      state: 'BACKUP',
      role: 'follower',
      term: 3,
      master: 'n1',
      vipHolders: ['n1'],
      vip: { address: '10.0.0.100/24', driver: 'linux', held: false },
      leaseRemainingMs: null,
      priority: 105,
      effectivePriority: 85,
      eligible: true,
      failingChecks: ['pg-ok'],
      checks: [
        {
          name: 'pg-ok',
          kind: 'tcp',
          weight: -20,
          passing: false,
          ran: true,
          lastError: '<img src=x onerror=alert(2)>',
          lastRunAt: null,
        },
      ],
      voters: { voters: ['n1', 'n2', EVIL], prev: null },
      masterChanges: 1,
    },
    removed: [],
    listeners: [
      {
        name: 'write',
        bind: '127.0.0.1:5000',
        role: 'primary',
        balance: 'first',
        active: 7,
        total: 42,
        queued: 0,
        refused: 1,
        queueTimeouts: 0,
        connectErrors: 0,
        cut: 0,
        backends: [
          { id: 'pg1', active: 7, total: 42, connectErrors: 0, bytesIn: 2048, bytesOut: 10, cut: 0 },
        ],
        tls: {
          mode: 'terminate',
          backend: 'verify-full',
          certificate: {
            subject: 'CN=edge',
            notAfter: '2027-01-05T00:00:00.000Z',
            fingerprint256: 'AB:CD',
            expiresInMs: 3 * 86_400_000 + 5_000,
            expiryWarning: true,
          },
        },
      },
    ],
  }
}

function backends(): BackendsView {
  const probe = { reachable: true, writable: true, timeline: 4, lagBytes: 0, error: null }
  return {
    node: 'n2',
    agreed: {
      primary: 'pg1',
      primaryTimeline: 4,
      replicas: [{ db: 'pg2', lagBytes: 3 * 1024 * 1024 }],
      up: ['pg3'],
      notes: [],
    },
    databases: [
      {
        name: 'pg1',
        address: '127.0.0.1:5432',
        local: {
          state: 'primary',
          timeline: 4,
          lagBytes: 0,
          ageMs: 80,
          postgres: probe,
          tcp: null,
          patroni: null,
        },
        observers: [
          { node: 'n1', state: 'primary', timeline: 4, ageMs: 120 },
          { node: EVIL, state: 'down', timeline: null, ageMs: 900 },
        ],
      },
      {
        name: 'pg2',
        address: '127.0.0.1:5433',
        local: {
          state: 'replica',
          timeline: 4,
          lagBytes: 3 * 1024 * 1024,
          ageMs: 80,
          postgres: { ...probe, writable: false },
          tcp: null,
          patroni: {
            reachable: true,
            role: 'replica',
            state: 'streaming',
            timeline: 4,
            lagBytes: 0,
            error: null,
          },
        },
        observers: [],
      },
      {
        name: 'pg3',
        address: '127.0.0.1:5434',
        local: {
          state: 'up',
          timeline: null,
          lagBytes: null,
          ageMs: 80,
          postgres: null,
          tcp: { reachable: true, error: null },
          patroni: null,
        },
        observers: [{ node: 'n1', state: 'up', timeline: null, ageMs: 50 }],
      },
    ],
  }
}

function source(s: ClusterStatus, b: BackendsView): ClusterSource {
  return {
    status: () => s,
    backends: () => b,
    members: () => s.members,
    master: () => ({ master: false, node: s.self, current: s.election.master, term: s.election.term }),
    health: () => ({ status: 'ok', node: s.self, uptimeMs: 1 }),
    ready: () => ({ ready: true, reasons: [] }),
  }
}

/** The text between `<tag ...data-x="value"...>` and the next `</tr>`: one row of a table. */
function row(page: string, attr: string, value: string): string {
  const start = page.indexOf(`${attr}="${value}"`)
  assert.ok(start >= 0, `no element with ${attr}="${value}"`)
  return page.slice(start, page.indexOf('</tr>', start))
}

describe('status page', () => {
  const page = renderStatusPage(status(), backends())

  it('is served at GET / as a self-refreshing, phone-sized HTML page', async () => {
    const res = await createControlApi({ source: source(status(), backends()) }).request('/')
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/)
    const body = await res.text()
    assert.match(body, /^<!doctype html>/)
    assert.match(body, /<meta name="viewport" content="width=device-width, initial-scale=1">/)
    assert.match(body, /<noscript><meta http-equiv="refresh" content="\d+"><\/noscript>/)
    assert.match(body, /setTimeout\(tick, every\)/)
    assert.doesNotMatch(body, /<(link|img)\b|src="http/, 'no external assets')
  })

  it('names the MASTER, the VIP and its holders', () => {
    assert.match(page, /data-testid="master">n1</)
    assert.match(page, /data-testid="vip">10\.0\.0\.100\/24</)
    assert.match(page, /data-testid="vip-holders">n1</)
    assert.match(page, /<title>pgmesh prod&amp;co · MASTER n1<\/title>/)
  })

  it('lists every member with state, priority, effective priority and role', () => {
    assert.equal(page.match(/data-testid="member"/g)?.length, 3)
    const n1 = row(page, 'data-member-id', 'n1')
    assert.match(n1, /data-state="alive" data-master="true"/)
    assert.match(n1, />MASTER</)
    assert.match(n1, /<td>110<\/td>/)
    const n2 = row(page, 'data-member-id', 'n2')
    assert.match(n2, /data-master="false"/)
    assert.match(n2, /85 <span class="muted">\(base 105\)<\/span>/)
    assert.match(n2, /&quot;pg-ok&quot;/)
    assert.match(n2, /this node/)
  })

  it('shows each database with its agreed role, timeline, lag and every observer', () => {
    const pg1 = page.slice(page.indexOf('data-db="pg1"'), page.indexOf('data-db="pg2"'))
    assert.match(pg1, /data-role="primary"/)
    assert.match(pg1, /timeline 4/)
    assert.match(pg1, /data-observer="n2"/)
    assert.match(pg1, /data-observer="n1"/)
    assert.match(pg1, /writable, TL 4/)
    const pg2 = page.slice(page.indexOf('data-db="pg2"'), page.indexOf('data-db="pg3"'))
    assert.match(pg2, /data-role="replica"/)
    assert.match(pg2, /lag 3\.0 MiB/)
    assert.match(pg2, /replica \(streaming\)/)
    const pg3 = page.slice(page.indexOf('data-db="pg3"'))
    assert.match(pg3, /data-role="up"/)
    assert.match(pg3, /<td>reachable<\/td>/)
    assert.match(page, /data-testid="primary">pg1</)
  })

  it('shows listeners with live connection counts', () => {
    const l = row(page, 'data-listener', 'write')
    assert.match(l, /127\.0\.0\.1:5000/)
    assert.match(l, /data-testid="listener-active">7</)
    assert.match(l, /pg1<\/span>: 7 active, 42 total, 0 errors, 2\.0 KiB in, 10 B out/)
    assert.match(l, /terminate, backend verify-full/)
    assert.match(l, /class="warn" data-testid="listener-cert-expiry">expires 2027-01-05 \(3 d\)/)
  })

  it('shows a listener policy: refusals by reason, the most-limited sources (escaped), the stick table', () => {
    const base = status()
    const withPolicy = {
      ...base,
      listeners: [
        {
          ...base.listeners[0]!,
          name: 'read',
          policy: {
            refused: {
              denied: 2,
              notAllowed: 0,
              overConnections: 0,
              overRate: 5,
              proxyUntrusted: 0,
              proxyMissing: 0,
              proxyInvalid: 0,
            },
            rules: [],
            ruleCount: 1,
            limited: [{ source: `10.0.0.9${EVIL}`, refused: 5 }],
            trackedSources: 1,
            connectedSources: 0,
            stick: { entries: 3, maxEntries: 100, recent: [] },
          },
        },
      ],
    }
    const l = row(renderStatusPage(withPolicy, backends()), 'data-listener', 'read')
    assert.match(l, /refused: denied 2, overRate 5/)
    assert.match(l, /limited: <span class="id">10\.0\.0\.9&lt;script&gt;/)
    assert.match(l, /sticky: 3 \/ 100/)
    assert.match(row(page, 'data-listener', 'write'), /data-testid="listener-policy">–</)
  })

  it('escapes every value from the cluster', () => {
    assert.ok(!page.includes(EVIL), 'a raw <script> node id reached the page')
    assert.ok(!page.includes('<img'), 'a raw check error reached the page')
    assert.equal(page.match(/<script>/g)?.length, 1, 'only the page’s own refresh script')
    assert.match(page, /data-member-id="&lt;script&gt;alert\(1\)&lt;\/script&gt;"/)
    assert.match(page, /data-observer="&lt;script&gt;/)
    assert.match(page, /&lt;img src=x onerror=alert\(2\)&gt;/)
    assert.match(page, /prod&amp;co/)
    assert.equal(escapeHtml(`"'&<>`), '&quot;&#39;&amp;&lt;&gt;')
  })

  it('renders a node that knows no MASTER, databases or listeners', () => {
    const s = status()
    const empty = renderStatusPage(
      {
        ...s,
        election: {
          ...s.election,
          master: null,
          vipHolders: [],
          vip: { address: null, driver: 'none', held: false },
        },
        listeners: [],
      },
      {
        node: 'n2',
        agreed: { primary: null, primaryTimeline: null, replicas: [], up: [], notes: ['no primary'] },
        databases: [],
      },
    )
    assert.match(empty, /data-testid="master">none</)
    assert.match(empty, /no VIP configured/)
    assert.match(empty, /no databases configured/)
    assert.match(empty, /no listeners configured/)
    assert.match(empty, /<li>no primary<\/li>/)
  })

  it('shows the timeline newest first, escaped, with each MASTER change and its cause', () => {
    const events: EventsView = {
      source: 'n2',
      lastSeq: 2,
      truncated: false,
      events: [
        {
          seq: 1,
          at: '2024-01-01T00:00:01.000Z',
          kind: 'member',
          member: EVIL,
          change: 'joined',
          from: null,
        },
        {
          seq: 2,
          at: '2024-01-01T00:00:02.000Z',
          kind: 'master',
          from: 'n1',
          to: 'n2',
          term: 4,
          cause: 'failure',
          detail: 'n1 is suspect',
        },
      ],
    }
    const p = renderStatusPage(status(), backends(), events)
    const first = p.indexOf('data-testid="event"')
    assert.ok(first > 0)
    assert.ok(p.indexOf('data-seq="2"') < p.indexOf('data-seq="1"'), 'newest first')
    assert.match(p, /data-kind="master" data-seq="2" data-cause="failure"/)
    assert.match(p, /00:00:02/)
    assert.ok(!p.includes(EVIL))
  })

  it('embeds one chart point as JSON that no value can break out of', () => {
    const s = status()
    const hostile = { ...s, listeners: s.listeners.map((l) => ({ ...l, name: '</script><img src=x>' })) }
    const p = renderStatusPage(hostile, backends())
    const m = /<script type="application\/json" id="pgmesh-chart-point">(.*?)<\/script>/.exec(p)
    assert.ok(m?.[1])
    assert.ok(!m[1].includes('<'))
    const point = JSON.parse(m[1]) as { t: number; v: Record<string, number> }
    assert.equal(point.t, Date.parse(s.generatedAt))
    assert.equal(point.v['conn:</script><img src=x>'], 7)
    assert.equal(point.v['lag:pg2'], 3 * 1024 * 1024)
    for (const chart of ['conn', 'cut', 'probe', 'lag']) assert.match(p, new RegExp(`data-chart="${chart}"`))
    assert.ok(!p.includes('data-chart="api"'), 'the node API latency chart is the control plane’s')
  })

  it('on the control plane: nodes with reachability, the majority, disagreements', () => {
    const s = status()
    const reach = {
      vipHolders: [],
      term: 3,
      configVersion: 1,
      primary: 'pg1',
      state: 'BACKUP' as const,
      master: 'n1',
    }
    const p = renderStatusPage(
      {
        ...s,
        self: 'edge',
        aggregate: {
          source: 'edge',
          base: 'n1',
          reachable: 2,
          total: 3,
          nodes: [
            { ...reach, url: 'http://a', id: 'n1', reachable: true, error: null, latencyMs: 4 },
            { ...reach, url: 'http://b', id: 'n2', reachable: true, error: null, latencyMs: 5 },
            {
              ...reach,
              url: 'http://c',
              id: null,
              reachable: false,
              error: { code: 'CP_NODE_TIMEOUT', message: 'no answer' },
              latencyMs: null,
              master: null,
              state: null,
            },
          ],
          master: { agreed: 'n1', answers: [{ value: 'n1', nodes: ['n1', 'n2'] }] },
          vipHolder: { agreed: null, answers: [] },
          disagreements: ['config version: 2 (n1) vs 1 (n2)'],
        },
      },
      backends(),
    )
    assert.match(p, /agreed by 2 of 3 nodes/)
    assert.match(p, /data-url="http:\/\/c" data-reachable="false"/)
    assert.match(p, /CP_NODE_TIMEOUT/)
    assert.match(p, /data-testid="disagreements"/)
    assert.match(p, /data-chart="api"/)
  })
})
