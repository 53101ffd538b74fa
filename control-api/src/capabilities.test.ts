import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  ApiErrorSchema,
  type ClusterStatus,
  type ConfigPutBody,
  type EventsView,
  EventsViewSchema,
  ok,
} from '@pgmesh/protocol'
import { createControlApi } from './app.js'
import type { ClusterSource, RequestContext } from './cluster-source.js'

const unused = () => {
  throw new Error('not used')
}

const reads: ClusterSource = {
  // an async source, as the control plane is: every route awaits
  status: async () => ({ self: 'n1' }) as unknown as ClusterStatus,
  members: async () => [],
  health: async () => ({ status: 'ok', node: 'n1', uptimeMs: 1 }),
  ready: async () => ({ ready: true, reasons: [] }),
  master: async () => ({ master: false, node: 'n1', current: null, term: 0 }),
  backends: unused,
}

const events: EventsView = {
  source: 'n1',
  events: [{ seq: 2, at: '2026-12-01T00:00:00.000Z', kind: 'config', version: 2, hash: 'h', origin: 'n1' }],
  lastSeq: 2,
  truncated: false,
}

describe('capabilities', () => {
  it('a capability the source lacks has no route at all (JSON 404)', async () => {
    const app = createControlApi({ source: reads })
    for (const [path, method] of [
      ['/metrics', 'GET'],
      ['/v1/config', 'GET'],
      ['/v1/config', 'PUT'],
      ['/v1/maintenance', 'GET'],
      ['/v1/members/n2/remove', 'POST'],
      ['/v1/events', 'GET'],
    ] as const) {
      const res = await app.request(path, { method })
      assert.equal(res.status, 404, `${method} ${path}`)
      assert.equal(ApiErrorSchema.parse(await res.json()).error.code, 'API_NOT_FOUND')
    }
    assert.equal((await app.request('/health')).status, 200)
  })

  it('GET /v1/events passes ?since= and refuses a bad one', async () => {
    const seen: (number | undefined)[] = []
    const app = createControlApi({
      source: {
        ...reads,
        events: (since) => {
          seen.push(since)
          return events
        },
      },
    })
    const all = await app.request('/v1/events')
    assert.equal(all.status, 200)
    assert.deepEqual(EventsViewSchema.parse(await all.json()), events)
    assert.equal((await app.request('/v1/events?since=1')).status, 200)
    assert.equal((await app.request('/v1/events?since=-1')).status, 400)
    assert.equal((await app.request('/v1/events?since=x')).status, 400)
    assert.deepEqual(seen, [undefined, 1])
  })

  it('writes: forward mode needs a presented token and hands it to the source', async () => {
    const calls: { body: ConfigPutBody; ctx: RequestContext | undefined }[] = []
    const source: ClusterSource = {
      ...reads,
      config: unused,
      putConfig: async (body, ctx) => {
        calls.push({ body, ctx })
        return ok({ version: 2, hash: 'a'.repeat(64) })
      },
    }
    const app = createControlApi({ source, writes: 'forward' })
    const put = (headers: Record<string, string>) =>
      app.request('/v1/config?node=n2', { method: 'PUT', headers, body: '{"cluster":{"name":"c"}}' })
    assert.equal((await put({})).status, 401)
    assert.equal((await put({ Authorization: 'Bearer tok123' })).status, 200)
    assert.deepEqual(calls, [
      { body: { cluster: { name: 'c' } }, ctx: { authorization: 'Bearer tok123', node: 'n2' } },
    ])
    // check mode (a node) without tokens: writes are off, the source is never asked
    const local = createControlApi({ source })
    const res = await local.request('/v1/config', {
      method: 'PUT',
      headers: { Authorization: 'Bearer tok123' },
      body: '{"cluster":{}}',
    })
    assert.equal(res.status, 403)
    assert.equal(calls.length, 1)
  })

  it('a node refuses maintenance meant for another node (?node=), and takes its own', async () => {
    const calls: unknown[] = []
    const app = createControlApi({
      source: {
        ...reads,
        setMaintenance: async (body) => {
          calls.push(body)
          return ok({ node: 'n1', enabled: body.enabled, reason: null, since: null, activeSessions: 0 })
        },
      },
      auth: { tokens: () => ['tok-0123456789abcdef'], protectReads: false },
    })
    const put = (q: string) =>
      app.request(`/v1/maintenance${q}`, {
        method: 'PUT',
        headers: { Authorization: 'Bearer tok-0123456789abcdef' },
        body: '{"enabled":true}',
      })
    const other = await put('?node=n2')
    assert.equal(other.status, 404)
    assert.equal(ApiErrorSchema.parse(await other.json()).error.code, 'MEMBER_NOT_FOUND')
    assert.equal(calls.length, 0)
    assert.equal((await put('?node=n1')).status, 200)
    assert.equal((await put('')).status, 200)
    assert.equal(calls.length, 2)
  })
})
