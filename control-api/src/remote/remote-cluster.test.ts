import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  type BackendsView,
  type ClusterStatus,
  ClusterStatusSchema,
  type ConfigPutBody,
  EventsViewSchema,
  err,
  type MemberView,
  ok,
  pgmeshError,
} from '@pgmesh/protocol'
import { createControlApi } from '../app.js'
import type { ClusterSource } from '../cluster-source.js'
import { createControlPlane } from './control-plane.js'
import type { FetchLike } from './node-client.js'
import { mergeExpositions } from './prom-merge.js'

function member(id: string): MemberView {
  return {
    id,
    peerId: `p-${id}`,
    self: false,
    state: 'alive',
    priority: 100,
    incarnation: 1,
    addrs: [],
    api: null,
    lastHeardAt: null,
    lastHeardAgoMs: null,
    stateSince: new Date(0).toISOString(),
    configVersion: 1,
    maintenance: null,
    election: null,
  }
}

interface FakeNode {
  id: string
  master: string | null
  configVersion: number
  puts: ConfigPutBody[]
  hang: boolean
}

function nodeSource(n: FakeNode): ClusterSource {
  const status = (): ClusterStatus => ({
    cluster: 'c1',
    version: '0.0.0',
    self: n.id,
    generatedAt: new Date(0).toISOString(),
    members: ['n1', 'n2', 'n3'].map(member),
    counts: { alive: 3, suspect: 0, dead: 0, left: 0 },
    gossip: { connectedPeers: 2, topicPeers: 2, messagesIn: 10, messagesOut: 5, dropped: {} },
    election: {
      quorum: 'majority',
      state: n.master === n.id ? 'MASTER' : 'BACKUP',
      role: 'follower',
      term: 3,
      master: n.master,
      vipHolders: n.master === null ? [] : [n.master],
      vip: { address: null, driver: 'none', held: n.master === n.id },
      leaseRemainingMs: null,
      priority: 100,
      effectivePriority: 100,
      eligible: true,
      failingChecks: [],
      checks: [],
      voters: null,
      masterChanges: 1,
    },
    listeners: [
      {
        name: 'rw',
        bind: ':5432',
        role: 'primary',
        balance: 'first',
        active: 1,
        total: 2,
        queued: 0,
        refused: 0,
        queueTimeouts: 0,
        connectErrors: 0,
        cut: 0,
        backends: [],
      },
    ],
    removed: [],
    config: { version: n.configVersion, hash: 'h', origin: 'n1', pendingRestart: [], conflicts: 0 },
  })
  const backends = (): BackendsView => ({
    node: n.id,
    agreed: { primary: 'pg1', primaryTimeline: 1, replicas: [], up: [], notes: [] },
    databases: [],
  })
  return {
    status,
    backends,
    members: () => status().members,
    health: () => ({ status: 'ok', node: n.id, uptimeMs: 1 }),
    ready: () => ({ ready: true, reasons: [] }),
    master: () => ({ master: n.master === n.id, node: n.id, current: n.master, term: 3 }),
    metrics: async () => ({ contentType: 'text/plain', body: '# HELP up Up.\n# TYPE up gauge\nup 1\n' }),
    putConfig: async (body) => {
      n.puts.push(body)
      return ok({ version: n.configVersion + 1, hash: 'b'.repeat(64) })
    },
    config: unusedConfig,
    removeMember: async (id) =>
      id === 'n3'
        ? ok({ removed: 'n3', incarnation: 1, voters: null })
        : err(pgmeshError('MEMBER_NOT_DEAD', `${id} is alive`)),
  }
}

const unusedConfig = () => {
  throw new Error('not used')
}

const TOKEN = 'node-token-0123456789'

/** Three node apps behind a fetch double: `hang` makes a node accept and never answer. */
function cluster() {
  const nodes: FakeNode[] = ['n1', 'n2', 'n3'].map((id) => ({
    id,
    master: 'n1',
    configVersion: 1,
    puts: [],
    hang: false,
  }))
  const apps = new Map(
    nodes.map((n, i) => [
      `http://10.0.0.${i + 1}:7947`,
      {
        n,
        app: createControlApi({
          source: nodeSource(n),
          auth: { tokens: () => [TOKEN], protectReads: false },
        }),
      },
    ]),
  )
  const fetchFn: FetchLike = async (input, init) => {
    const url = new URL(input)
    const target = apps.get(url.origin)
    if (target === undefined) throw new TypeError('fetch failed: connection refused')
    if (target.n.hang) {
      return await new Promise<Response>((_, reject) => {
        init.signal?.addEventListener('abort', () => reject(new Error('aborted')))
      })
    }
    return await target.app.request(url.pathname + url.search, init)
  }
  const cp = createControlPlane(
    { name: 'edge', nodes: [...apps.keys()].map((url) => ({ url })), nodeTimeoutMs: 200 },
    { env: {}, version: '0.1.0', fetch: fetchFn },
  )
  assert.ok(cp.ok)
  return { nodes, app: cp.value.app }
}

describe('control plane (RemoteCluster over three node APIs)', () => {
  it('aggregates: all members, the agreed MASTER, every listener, per-node reachability', async () => {
    const { app } = cluster()
    const s = ClusterStatusSchema.parse(await (await app.request('/v1/status')).json())
    assert.equal(s.self, 'edge')
    assert.deepEqual(
      s.members.map((m) => m.id),
      ['n1', 'n2', 'n3'],
    )
    assert.equal(s.election.master, 'n1')
    assert.equal(s.aggregate?.reachable, 3)
    assert.deepEqual(s.aggregate?.disagreements, [])
    assert.deepEqual(
      s.listeners.map((l) => l.name),
      ['n1/rw', 'n2/rw', 'n3/rw'],
    )
    assert.equal(s.gossip.messagesIn, 30)
  })

  it('a hanging node is marked unreachable within the timeout; disagreements are shown', async () => {
    const { nodes, app } = cluster()
    const [n1, n2, n3] = nodes as [FakeNode, FakeNode, FakeNode]
    n1.hang = true
    n2.master = 'n2'
    n3.master = 'n2'
    n3.configVersion = 2
    const started = performance.now()
    const s = ClusterStatusSchema.parse(await (await app.request('/v1/status')).json())
    assert.ok(performance.now() - started < 5000)
    const a = s.aggregate
    assert.ok(a)
    assert.equal(a.reachable, 2)
    assert.equal(a.nodes[0]?.reachable, false)
    assert.equal(a.nodes[0]?.error?.code, 'CP_NODE_TIMEOUT')
    assert.equal(s.election.master, 'n2')
    assert.ok(a.disagreements.some((d) => d.startsWith('config version')))
    // a MASTER change between two views is a timeline event
    n1.hang = false
    n1.master = 'n1'
    n2.master = 'n1'
    n3.master = 'n1'
    await app.request('/v1/status')
    const ev = EventsViewSchema.parse(await (await app.request('/v1/events')).json())
    const m = ev.events.find((e) => e.kind === 'master')
    assert.ok(m?.kind === 'master')
    assert.deepEqual([m.from, m.to], ['n2', 'n1'])
  })

  it('with no majority there is no agreed MASTER', async () => {
    const { nodes, app } = cluster()
    const [n1, n2, n3] = nodes as [FakeNode, FakeNode, FakeNode]
    n1.master = 'n1'
    n2.master = 'n2'
    n3.hang = true
    const s = ClusterStatusSchema.parse(await (await app.request('/v1/status')).json())
    assert.equal(s.election.master, null)
    assert.equal(s.aggregate?.master.answers.length, 2)
  })

  it('forwards writes with the caller token; the node decides; a down node is skipped', async () => {
    const { nodes, app } = cluster()
    await app.request('/v1/status')
    const put = (token: string | null) =>
      app.request('/v1/config', {
        method: 'PUT',
        headers: token === null ? {} : { Authorization: `Bearer ${token}` },
        body: JSON.stringify({ cluster: { name: 'c1' } }),
      })
    assert.equal((await put(null)).status, 401)
    const wrong = await put('wrong-token-0123456789')
    assert.equal(wrong.status, 401)
    assert.equal(nodes[0]?.puts.length, 0)
    ;(nodes[0] as FakeNode).hang = true
    const good = await put(TOKEN)
    assert.equal(good.status, 200)
    assert.equal(nodes[1]?.puts.length, 1)
    const removed = await app.request('/v1/members/n2/remove', {
      method: 'POST',
      headers: { Authorization: `Bearer ${TOKEN}` },
    })
    assert.equal(removed.status, 409)
    const maint = await app.request('/v1/maintenance', {
      method: 'PUT',
      headers: { Authorization: `Bearer ${TOKEN}` },
      body: '{"enabled":true}',
    })
    assert.equal(maint.status, 400)
  })

  it('merges metrics with a node label, one HELP/TYPE per family', async () => {
    const { app } = cluster()
    await app.request('/v1/status')
    const text = await (await app.request('/metrics')).text()
    assert.equal(text.match(/# TYPE up gauge/g)?.length, 1)
    assert.match(text, /up\{pgmesh_node="n2"\} 1/)
    assert.match(text, /pgmesh_control_plane_node_up\{url="http:\/\/10\.0\.0\.3:7947"\} 1/)
    assert.equal(
      mergeExpositions([
        { node: 'a', text: '# TYPE h histogram\nh_bucket{le="1"} 2\nh_sum 3\nh_count 2\n' },
        { node: 'b', text: '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n' },
      ]),
      '# TYPE h histogram\nh_bucket{pgmesh_node="a",le="1"} 2\nh_sum{pgmesh_node="a"} 3\nh_count{pgmesh_node="a"} 2\nh_bucket{pgmesh_node="b",le="1"} 1\nh_sum{pgmesh_node="b"} 1\nh_count{pgmesh_node="b"} 1\n',
    )
  })

  it('refuses a bad config with the problems listed', () => {
    const cp = createControlPlane(
      { nodes: [{ url: 'ftp://x' }], nodeTimeoutMs: 1 },
      { env: {}, version: '0' },
    )
    assert.equal(cp.ok, false)
    assert.ok(!cp.ok && cp.error.code === 'CP_CONFIG_INVALID' && (cp.error.issues?.length ?? 0) >= 2)
    const env = createControlPlane(
      { nodes: [{ url: 'http://a:1', tokenEnv: 'NOPE' }] },
      { env: {}, version: '0' },
    )
    assert.ok(!env.ok && env.error.message.includes('NOPE'))
  })
})

describe('control plane fan-out', () => {
  it('the status page asks every node once per refresh (status and backends share one fan-out)', async () => {
    let calls = 0
    const node = createControlApi({
      source: nodeSource({ id: 'n1', master: 'n1', configVersion: 1, puts: [], hang: false }),
    })
    const cp = createControlPlane(
      { nodes: [{ url: 'http://10.0.0.1:7947' }], nodeTimeoutMs: 200 },
      {
        env: {},
        version: '0',
        fetch: async (input, init) => {
          calls++
          return await node.request(new URL(input).pathname, init)
        },
      },
    )
    assert.ok(cp.ok)
    assert.equal((await cp.value.app.request('/')).status, 200)
    assert.equal(calls, 2, 'one /v1/status and one /v1/backends')
    await cp.value.app.request('/v1/status')
    assert.equal(calls, 4, 'a later request fans out again')
  })
})

describe('control plane and bad node answers', () => {
  it('a node answering garbage, the wrong shape or too much is marked bad; the rest is served', async () => {
    const good = createControlApi({
      source: nodeSource({ id: 'n1', master: 'n1', configVersion: 1, puts: [], hang: false }),
    })
    const answers: Record<string, () => Response> = {
      'http://10.0.0.2:1': () => new Response('<html>not json</html>', { status: 200 }),
      'http://10.0.0.3:1': () => Response.json({ cluster: 'x' }),
      'http://10.0.0.4:1': () => new Response('x'.repeat(9 * 1024 * 1024)),
      'http://10.0.0.5:1': () =>
        new Response(
          new ReadableStream({
            pull(ctl) {
              ctl.enqueue(new Uint8Array(1024 * 1024))
            },
          }),
        ),
    }
    const cp = createControlPlane(
      { nodes: ['http://10.0.0.1:1', ...Object.keys(answers)].map((url) => ({ url })), nodeTimeoutMs: 2000 },
      {
        env: {},
        version: '0',
        fetch: async (input, init) => {
          const u = new URL(input)
          const bad = answers[u.origin]
          return bad === undefined ? await good.request(u.pathname, init) : bad()
        },
      },
    )
    assert.ok(cp.ok)
    const s = ClusterStatusSchema.parse(await (await cp.value.app.request('/v1/status')).json())
    assert.equal(s.aggregate?.reachable, 1)
    assert.deepEqual(
      s.aggregate?.nodes.map((n) => n.error?.code ?? 'ok'),
      ['ok', 'CP_NODE_BAD_ANSWER', 'CP_NODE_BAD_ANSWER', 'CP_NODE_BAD_ANSWER', 'CP_NODE_BAD_ANSWER'],
    )
    assert.deepEqual(
      s.members.map((m) => m.id),
      ['n1', 'n2', 'n3'],
    )
  })
})

describe('agreement (property)', () => {
  it('an answer is agreed only with a strict majority of all configured nodes, and every report is counted once', async () => {
    const { agreement } = await import('./aggregate.js')
    let s = 7
    const r = () => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0
      return s / 2 ** 32
    }
    for (let run = 0; run < 500; run++) {
      const total = 1 + Math.floor(r() * 9)
      const answering = Math.floor(r() * (total + 1))
      const values = [null, 'n1', 'n2', 'n3']
      const reports = Array.from({ length: answering }, (_, i) => ({
        node: `n${i}`,
        value: values[Math.floor(r() * values.length)] ?? null,
      }))
      const a = agreement(reports, total)
      assert.equal(
        a.answers.reduce((n, x) => n + x.nodes.length, 0),
        answering,
      )
      const top = a.answers.find((x) => x.value === a.agreed)
      if (a.agreed !== null) assert.ok((top?.nodes.length ?? 0) * 2 > total, `run ${run}`)
      for (const x of a.answers) {
        if (x.nodes.length * 2 > total && x.value !== null) assert.equal(a.agreed, x.value, `run ${run}`)
      }
    }
  })
})
