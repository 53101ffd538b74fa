import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  ApiErrorSchema,
  BackendsViewSchema,
  ClusterStatusSchema,
  MasterResponseSchema,
  MembersResponseSchema,
  type MemberView,
} from '@pgmesh/protocol'
import { createControlApi } from './app.js'
import type { ClusterSource } from './cluster-source.js'

function member(id: string, state: MemberView['state']): MemberView {
  return {
    id,
    peerId: `peer-${id}`,
    self: id === 'n1',
    state,
    priority: 100,
    incarnation: 1,
    addrs: [],
    api: null,
    lastHeardAt: null,
    lastHeardAgoMs: null,
    stateSince: new Date(0).toISOString(),
    configVersion: 0,
    maintenance: null,
    election: null,
  }
}

/** A fixed in-memory ClusterSource: the second implementation of the interface besides the live node. */
function staticSource(members: MemberView[], ready = true, master = true): ClusterSource {
  return {
    status: () => ({
      cluster: 'c1',
      version: '0.0.0',
      self: 'n1',
      generatedAt: new Date(0).toISOString(),
      members,
      counts: { alive: 2, suspect: 0, dead: 1, left: 0 },
      gossip: { connectedPeers: 1, topicPeers: 1, messagesIn: 0, messagesOut: 0, dropped: {} },
      election: {
        quorum: 'majority',
        state: master ? 'MASTER' : 'BACKUP',
        role: master ? 'leader' : 'follower',
        term: 2,
        master: 'n1',
        vipHolders: ['n1'],
        vip: { address: null, driver: 'none', held: master },
        leaseRemainingMs: master ? 200 : null,
        priority: 100,
        effectivePriority: 100,
        eligible: true,
        failingChecks: [],
        checks: [],
        voters: { voters: ['n1', 'n2', 'n3'], prev: null },
        masterChanges: 1,
      },
      listeners: [],
      removed: [],
    }),
    master: () => ({ master, node: 'n1', current: 'n1', term: 2 }),
    backends: () => ({
      node: 'n1',
      agreed: { primary: 'pg1', primaryTimeline: 2, replicas: [], up: [], notes: [] },
      databases: [],
    }),
    members: () => members,
    health: () => ({ status: 'ok', node: 'n1', uptimeMs: 5 }),
    ready: () => ({ ready, reasons: ready ? [] : ['no seed reachable yet'] }),
  }
}

const members = [member('n1', 'alive'), member('n2', 'alive'), member('n3', 'dead')]

describe('control API', () => {
  const app = createControlApi({ source: staticSource(members) })

  it('serves the cluster status in the protocol shape', async () => {
    const res = await app.request('/v1/status')
    assert.equal(res.status, 200)
    const body = ClusterStatusSchema.parse(await res.json())
    assert.equal(body.members.length, 3)
  })

  it('filters members by state', async () => {
    const res = await app.request('/v1/members?state=dead')
    assert.equal(res.status, 200)
    const body = MembersResponseSchema.parse(await res.json())
    assert.deepEqual(
      body.members.map((m) => m.id),
      ['n3'],
    )
  })

  it('answers a bad query with a JSON 400 naming the problem', async () => {
    const res = await app.request('/v1/members?state=zombie&x=1')
    assert.equal(res.status, 400)
    const body = ApiErrorSchema.parse(await res.json())
    assert.equal(body.error.code, 'API_BAD_REQUEST')
    assert.ok(body.error.issues?.some((i) => i.path === 'state'))
  })

  it('answers unknown routes and methods with a JSON 404', async () => {
    for (const [path, method] of [
      ['/nope', 'GET'],
      ['/v1/status', 'DELETE'],
    ] as const) {
      const res = await app.request(path, { method })
      assert.equal(res.status, 404)
      assert.equal(ApiErrorSchema.parse(await res.json()).error.code, 'API_NOT_FOUND')
    }
  })

  it('reports health and readiness', async () => {
    assert.equal((await app.request('/health')).status, 200)
    assert.equal((await app.request('/ready')).status, 200)
    const notReady = createControlApi({ source: staticSource(members, false) })
    const res = await notReady.request('/ready')
    assert.equal(res.status, 503)
    assert.deepEqual(await res.json(), { ready: false, reasons: ['no seed reachable yet'] })
  })

  it('serves the agreed database roles', async () => {
    const res = await app.request('/v1/backends')
    assert.equal(res.status, 200)
    assert.equal(BackendsViewSchema.parse(await res.json()).agreed.primary, 'pg1')
  })

  it('answers /master 200 on the MASTER only, so a load balancer can follow it', async () => {
    const yes = await app.request('/master')
    assert.equal(yes.status, 200)
    assert.equal(MasterResponseSchema.parse(await yes.json()).master, true)
    const no = await createControlApi({ source: staticSource(members, true, false) }).request('/master')
    assert.equal(no.status, 503)
    assert.equal(MasterResponseSchema.parse(await no.json()).master, false)
  })

  it('turns a failing source into a JSON 500 without leaking details', async () => {
    const seen: unknown[] = []
    const broken: ClusterSource = {
      ...staticSource(members),
      status: () => {
        throw new Error('secret internals')
      },
    }
    const res = await createControlApi({ source: broken, onError: (e) => seen.push(e) }).request('/v1/status')
    assert.equal(res.status, 500)
    const text = await res.text()
    assert.doesNotMatch(text, /secret internals/)
    assert.equal(seen.length, 1)
  })
})

describe('control API: /metrics', () => {
  it('serves the source metrics as they are, with their content type', async () => {
    const body = '# HELP pgmesh_master 1 on the MASTER\n# TYPE pgmesh_master gauge\npgmesh_master 1\n'
    const source: ClusterSource = {
      ...staticSource(members),
      metrics: async () => ({ contentType: 'text/plain; version=0.0.4; charset=utf-8', body }),
    }
    const res = await createControlApi({ source }).request('/metrics')
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
    assert.equal(await res.text(), body)
  })

  it('answers 404 JSON when the source has no metrics', async () => {
    const res = await createControlApi({ source: staticSource(members) }).request('/metrics')
    assert.equal(res.status, 404)
    assert.equal(ApiErrorSchema.parse(await res.json()).error.code, 'API_NOT_FOUND')
  })

  it('turns a failing metrics source into a JSON 500', async () => {
    const source: ClusterSource = {
      ...staticSource(members),
      metrics: () => Promise.reject(new Error('registry broke')),
    }
    const seen: unknown[] = []
    const res = await createControlApi({ source, onError: (e) => seen.push(e) }).request('/metrics')
    assert.equal(res.status, 500)
    assert.doesNotMatch(await res.text(), /registry broke/)
    assert.equal(seen.length, 1)
  })
})
