import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { type TrackedCheck, TrackedCheckSchema } from '@pgmesh/protocol'
import { runHttpCheck } from './run-http.js'

let server: Server
let base = ''
before(async () => {
  server = createServer((req, res) => {
    if (req.url === '/slow') return void setTimeout(() => res.end('late'), 2000).unref()
    res.statusCode = req.url === '/replica' ? 503 : 200
    res.end('x'.repeat(100_000))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
after(async () => {
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
})

const http = (url: string, extra: Partial<Extract<TrackedCheck, { kind: 'http' }>> = {}) =>
  TrackedCheckSchema.parse({
    name: 'h',
    kind: 'http',
    url,
    timeoutMs: 300,
    intervalMs: 1000,
    ...extra,
  }) as Extract<TrackedCheck, { kind: 'http' }>
const never = new AbortController().signal

describe('http check', () => {
  it('passes on an expected status and fails on another', async () => {
    assert.deepEqual(await runHttpCheck(http(`${base}/primary`), never), { ok: true })
    const r = await runHttpCheck(http(`${base}/replica`), never)
    assert.equal(r.ok, false)
    assert.match(r.error ?? '', /HTTP 503, expected 200/)
    assert.deepEqual(await runHttpCheck(http(`${base}/replica`, { expectStatus: [200, 503] }), never), {
      ok: true,
    })
  })

  it('fails on a refused connection and on a timeout', async () => {
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as AddressInfo).port
    await new Promise((resolve) => closed.close(resolve))
    const refused = await runHttpCheck(http(`http://127.0.0.1:${port}/`), never)
    assert.equal(refused.ok, false)
    assert.match(refused.error ?? '', /ECONNREFUSED/)

    const started = Date.now()
    const slow = await runHttpCheck(http(`${base}/slow`, { timeoutMs: 100 }), never)
    assert.ok(Date.now() - started < 1500)
    assert.equal(slow.ok, false)
    assert.match(slow.error ?? '', /timed out after 100 ms/)
  })
})
