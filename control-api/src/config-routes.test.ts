import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { type ConfigPutBody, type ConfigView, err, ok, pgmeshError } from '@pgmesh/protocol'
import { createControlApi } from './app.js'
import type { ClusterSource } from './cluster-source.js'

const TOKEN = '0123456789abcdef0123'
const HASH = 'a'.repeat(64)

function source(): { src: ClusterSource; puts: ConfigPutBody[] } {
  const puts: ConfigPutBody[] = []
  const view: ConfigView = {
    version: 3,
    hash: HASH,
    origin: 'n2',
    source: 'api',
    at: '2026-11-28T00:00:00.000Z',
    cluster: { name: 'c1' },
    pendingRestart: [],
    conflicts: [],
  }
  const unused = () => {
    throw new Error('not used')
  }
  const src: ClusterSource = {
    status: unused,
    members: unused,
    health: unused,
    ready: unused,
    master: unused,
    backends: unused,
    config: () => view,
    putConfig: async (body) => {
      puts.push(body)
      if (body.baseVersion === 1) return err(pgmeshError('CONFIG_CONFLICT', 'version 3 is current'))
      if ('bad' in body.cluster) {
        return err(
          pgmeshError('CONFIG_INVALID', '2 problem(s)', [
            { path: 'cluster.listeners.0.bind', message: 'not an address' },
            { path: 'cluster.bad', message: 'unknown key' },
          ]),
        )
      }
      return ok({ version: 4, hash: HASH })
    },
  }
  return { src, puts }
}

const put = (body: unknown, token: string | null = TOKEN) => ({
  method: 'PUT',
  headers: {
    'content-type': 'application/json',
    ...(token === null ? {} : { authorization: `Bearer ${token}` }),
  },
  body: typeof body === 'string' ? body : JSON.stringify(body),
})

describe('/v1/config', () => {
  const { src, puts } = source()
  const app = createControlApi({ source: src, auth: { tokens: () => [TOKEN], protectReads: false } })

  it('GET returns the running config with its version and origin', async () => {
    const res = await app.request('/v1/config')
    assert.equal(res.status, 200)
    const body = (await res.json()) as ConfigView
    assert.equal(body.version, 3)
    assert.equal(body.origin, 'n2')
  })

  it('PUT without a token is 401 and changes nothing', async () => {
    const before = puts.length
    const res = await app.request('/v1/config', put({ cluster: { name: 'c1' } }, null))
    assert.equal(res.status, 401)
    assert.equal(puts.length, before)
  })

  it('PUT answers 200 with the new version, 400 with every problem, 409 on a stale base', async () => {
    const good = await app.request('/v1/config', put({ cluster: { name: 'c1' }, baseVersion: 3 }))
    assert.equal(good.status, 200)
    assert.deepEqual(await good.json(), { version: 4, hash: HASH })
    const bad = await app.request('/v1/config', put({ cluster: { bad: 1 } }))
    assert.equal(bad.status, 400)
    const e = (await bad.json()) as { error: { code: string; issues: { path: string }[] } }
    assert.equal(e.error.code, 'CONFIG_INVALID')
    assert.deepEqual(
      e.error.issues.map((i) => i.path),
      ['cluster.listeners.0.bind', 'cluster.bad'],
    )
    const stale = await app.request('/v1/config', put({ cluster: { name: 'c1' }, baseVersion: 1 }))
    assert.equal(stale.status, 409)
  })

  it('PUT refuses a body that is not JSON or not { cluster }, before the source sees it', async () => {
    const before = puts.length
    assert.equal((await app.request('/v1/config', put('{nope'))).status, 400)
    const shape = await app.request('/v1/config', put({ listeners: [] }))
    assert.equal(shape.status, 400)
    assert.equal(((await shape.json()) as { error: { code: string } }).error.code, 'API_BAD_REQUEST')
    const typo = await app.request('/v1/config', put({ cluster: { name: 'c1' }, baseVerison: 3 }))
    assert.equal(typo.status, 400)
    const issues = ((await typo.json()) as { error: { issues: { path: string; message: string }[] } }).error
      .issues
    assert.deepEqual(issues, [
      { path: 'baseVerison', message: 'unknown field (did you mean "baseVersion"?)' },
    ])
    assert.equal((await app.request('/v1/config', put('x'.repeat(2_000_000)))).status, 413)
    assert.equal(puts.length, before)
  })
})
