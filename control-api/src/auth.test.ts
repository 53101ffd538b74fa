import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Hono } from 'hono'
import { type ApiAuth, requireToken } from './auth.js'

const TOKEN = '0123456789abcdef0123'

function app(auth: ApiAuth | undefined): Hono {
  const a = new Hono()
  a.get('/r', requireToken(auth, 'read'), (c) => c.text('read'))
  a.post('/w', requireToken(auth, 'write'), (c) => c.text('written'))
  return a
}

const bearer = (t: string) => ({ headers: { authorization: `Bearer ${t}` } })

describe('requireToken', () => {
  it('writes need a configured token: 403 without tokens, 401 without or with a wrong one', async () => {
    const off = await app(undefined).request('/w', { method: 'POST' })
    assert.equal(off.status, 403)
    assert.equal(((await off.json()) as { error: { code: string } }).error.code, 'API_WRITES_DISABLED')
    const a = app({ tokens: () => [TOKEN], protectReads: false })
    const none = await a.request('/w', { method: 'POST' })
    assert.equal(none.status, 401)
    assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="pgmesh"')
    assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'API_UNAUTHORIZED')
    assert.equal((await a.request('/w', { method: 'POST', ...bearer(`${TOKEN}x`) })).status, 401)
    assert.equal((await a.request('/w', { method: 'POST', ...bearer(TOKEN.slice(1)) })).status, 401)
    assert.equal((await a.request('/w', { method: 'POST', headers: { authorization: TOKEN } })).status, 401)
    const ok = await a.request('/w', { method: 'POST', ...bearer(TOKEN) })
    assert.equal(ok.status, 200)
    assert.equal(await ok.text(), 'written')
  })

  it('reads are open unless protectReads', async () => {
    assert.equal((await app(undefined).request('/r')).status, 200)
    assert.equal((await app({ tokens: () => [TOKEN], protectReads: false }).request('/r')).status, 200)
    const closed = app({ tokens: () => [TOKEN], protectReads: true })
    assert.equal((await closed.request('/r')).status, 401)
    assert.equal((await closed.request('/r', bearer(TOKEN))).status, 200)
  })

  it('reads the tokens on every request, so a reload takes effect at once', async () => {
    let tokens = [TOKEN]
    const a = app({ tokens: () => tokens, protectReads: false })
    assert.equal((await a.request('/w', { method: 'POST', ...bearer(TOKEN) })).status, 200)
    tokens = ['another-token-0123456789']
    assert.equal((await a.request('/w', { method: 'POST', ...bearer(TOKEN) })).status, 401)
  })
})
