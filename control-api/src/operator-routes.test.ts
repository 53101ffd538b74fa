import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  ApiErrorSchema,
  err,
  type MaintenancePutBody,
  type MaintenanceView,
  MaintenanceViewSchema,
  MemberRemoveResponseSchema,
  ok,
  pgmeshError,
} from '@pgmesh/protocol'
import { createControlApi } from './app.js'
import type { ClusterSource } from './cluster-source.js'

const TOKEN = 'operator-token-0123456789'
const auth = { tokens: () => [TOKEN], protectReads: false }

function source(): ClusterSource & { puts: MaintenancePutBody[]; removes: string[] } {
  const unused = () => {
    throw new Error('not used by these routes')
  }
  let view: MaintenanceView = { node: 'n1', enabled: false, reason: null, since: null, activeSessions: 0 }
  const s = {
    puts: [] as MaintenancePutBody[],
    removes: [] as string[],
    status: unused,
    members: unused,
    health: unused,
    ready: unused,
    master: unused,
    backends: unused,
    maintenance: () => view,
    async setMaintenance(body: MaintenancePutBody) {
      s.puts.push(body)
      view = {
        ...view,
        enabled: body.enabled,
        reason: body.enabled ? (body.reason ?? null) : null,
        since: body.enabled ? new Date(0).toISOString() : null,
      }
      return ok(view)
    },
    async removeMember(id: string) {
      s.removes.push(id)
      if (id === 'n1') return err(pgmeshError('MEMBER_IS_SELF', 'n1 is this node'))
      if (id === 'n2') return err(pgmeshError('MEMBER_NOT_DEAD', 'n2 is alive'))
      if (id !== 'n3') return err(pgmeshError('MEMBER_NOT_FOUND', `no member ${id}`))
      return ok({ removed: id, incarnation: 7, voters: ['n1', 'n2', 'n3'] })
    },
  }
  return s
}

const put = (body: string, token: string | null = TOKEN) => ({
  method: 'PUT',
  body,
  headers: {
    'content-type': 'application/json',
    ...(token === null ? {} : { authorization: `Bearer ${token}` }),
  },
})
const post = { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } }

async function errorCode(res: Response): Promise<string> {
  return ApiErrorSchema.parse(await res.json()).error.code
}

describe('operator routes', () => {
  it('PUT /v1/maintenance is a write: 403 without tokens, 401 without a valid one', async () => {
    const src = source()
    const off = createControlApi({ source: src })
    assert.equal((await off.request('/v1/maintenance', put('{"enabled":true}'))).status, 403)
    const app = createControlApi({ source: src, auth })
    assert.equal((await app.request('/v1/maintenance', put('{"enabled":true}', null))).status, 401)
    assert.equal((await app.request('/v1/maintenance', put('{"enabled":true}', 'wrong'))).status, 401)
    assert.deepEqual(src.puts, [])
  })

  it('PUT /v1/maintenance validates the body and answers the new state; GET reads it', async () => {
    const src = source()
    const app = createControlApi({ source: src, auth })
    const notJson = await app.request('/v1/maintenance', put('{enabled'))
    assert.equal(notJson.status, 400)
    assert.equal(await errorCode(notJson), 'API_BAD_REQUEST')
    const bad = await app.request('/v1/maintenance', put('{"enabled":"yes","extra":1}'))
    assert.equal(bad.status, 400)
    const issues = ApiErrorSchema.parse(await bad.json()).error.issues ?? []
    assert.ok(issues.some((i) => i.path === 'enabled'))
    assert.ok(issues.some((i) => i.path.includes('extra') || i.message.includes('extra')))
    const long = await app.request(
      '/v1/maintenance',
      put(JSON.stringify({ enabled: true, reason: 'x'.repeat(201) })),
    )
    assert.equal(long.status, 400)
    const huge = await app.request(
      '/v1/maintenance',
      put(JSON.stringify({ enabled: true, reason: 'x'.repeat(9000) })),
    )
    assert.equal(huge.status, 413)
    assert.deepEqual(src.puts, [])

    const on = await app.request('/v1/maintenance', put('{"enabled":true,"reason":"kernel upgrade"}'))
    assert.equal(on.status, 200)
    const v = MaintenanceViewSchema.parse(await on.json())
    assert.equal(v.enabled, true)
    assert.equal(v.reason, 'kernel upgrade')
    assert.deepEqual(src.puts, [{ enabled: true, reason: 'kernel upgrade' }])
    const got = MaintenanceViewSchema.parse(await (await app.request('/v1/maintenance')).json())
    assert.deepEqual(got, v)
  })

  it('POST /v1/members/{id}/remove: a write, with a status per refusal code', async () => {
    const src = source()
    const app = createControlApi({ source: src, auth })
    assert.equal((await app.request('/v1/members/n3/remove', { method: 'POST' })).status, 401)
    const removed = await app.request('/v1/members/n3/remove', post)
    assert.equal(removed.status, 200)
    assert.deepEqual(MemberRemoveResponseSchema.parse(await removed.json()).removed, 'n3')
    const self = await app.request('/v1/members/n1/remove', post)
    assert.deepEqual([self.status, await errorCode(self)], [409, 'MEMBER_IS_SELF'])
    const alive = await app.request('/v1/members/n2/remove', post)
    assert.deepEqual([alive.status, await errorCode(alive)], [409, 'MEMBER_NOT_DEAD'])
    const unknown = await app.request('/v1/members/zz/remove', post)
    assert.deepEqual([unknown.status, await errorCode(unknown)], [404, 'MEMBER_NOT_FOUND'])
    const badId = await app.request('/v1/members/%20bad/remove', post)
    assert.deepEqual([badId.status, await errorCode(badId)], [400, 'API_BAD_REQUEST'])
    assert.deepEqual(src.removes, ['n3', 'n1', 'n2', 'zz'])
  })

  it('a source without operator actions answers 404', async () => {
    const { maintenance: _m, setMaintenance: _s, removeMember: _r, ...rest } = source()
    const app = createControlApi({ source: rest, auth })
    assert.equal((await app.request('/v1/maintenance')).status, 404)
    assert.equal((await app.request('/v1/maintenance', put('{"enabled":false}'))).status, 404)
    assert.equal((await app.request('/v1/members/n3/remove', post)).status, 404)
  })
})
