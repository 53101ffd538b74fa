/**
 * The API server's own limits, on a real Node http server on loopback in front of the real control
 * API: what is refused before any route runs, and that the server keeps serving afterwards.
 */
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { type ClusterSource, createControlApi } from '@pgmesh/control-api'
import { type ConfigPutBody, type ConfigView, NodeConfigSchema, ok } from '@pgmesh/protocol'
import { type ApiLimits, DEFAULT_API_LIMITS, resolveApiPolicy } from '../mesh-node/src/api-policy.js'
import { type ApiServer, startApiServer } from '../mesh-node/src/api-server.js'

const TOKEN = '0123456789abcdef0123'
const HASH = 'a'.repeat(64)

function source(): { src: ClusterSource; puts: ConfigPutBody[] } {
  const puts: ConfigPutBody[] = []
  const view: ConfigView = {
    version: 3,
    hash: HASH,
    origin: 'n1',
    source: 'api',
    at: '2026-12-01T00:00:00.000Z',
    cluster: { name: 'c1' },
    pendingRestart: [],
    conflicts: [],
  }
  const health = () => ({ status: 'ok' as const, node: 'n1', version: 'test', uptimeMs: 1 })
  const src = {
    health,
    config: () => view,
    putConfig: async (body: ConfigPutBody) => {
      puts.push(body)
      return ok({ version: 4, hash: HASH })
    },
  } as unknown as ClusterSource
  return { src, puts }
}

interface Raw {
  /** everything the server sent */
  readonly data: string
  /** the server closed the connection (false: still open when the wait ended) */
  readonly closed: boolean
  readonly ms: number
}

/** Writes `text` to a fresh connection and collects the answer until close or `waitMs`. */
function raw(port: number, text: string | Buffer, waitMs: number, keep?: (s: Socket) => void): Promise<Raw> {
  return new Promise((resolve) => {
    const t0 = performance.now()
    const s = connect(port, '127.0.0.1')
    let data = ''
    let done = false
    const finish = (closed: boolean) => {
      if (done) return
      done = true
      clearTimeout(timer)
      if (keep === undefined) s.destroy()
      resolve({ data, closed, ms: performance.now() - t0 })
    }
    const timer = setTimeout(() => finish(false), waitMs)
    s.on('data', (b) => {
      data += b.toString('latin1')
    })
    s.on('close', () => finish(true))
    s.on('error', () => finish(true))
    s.on('connect', () => {
      s.write(text)
      keep?.(s)
    })
  })
}

const statusOf = (r: Raw) => Number(/^HTTP\/1\.1 (\d{3})/.exec(r.data)?.[1] ?? 0)

describe('API server limits', () => {
  let server: ApiServer
  let port: number
  const { src, puts } = source()
  const limits: ApiLimits = {
    ...DEFAULT_API_LIMITS,
    maxConnections: 6,
    maxBodyBytes: 4096,
    headersTimeoutMs: 400,
    requestTimeoutMs: 800,
  }
  const auth = { tokens: () => [TOKEN], protectReads: false }
  const told: string[] = []

  before(async () => {
    const app = createControlApi({ source: src, auth })
    server = await startApiServer(
      app,
      { host: '127.0.0.1', port: 0 },
      {
        auth,
        allowedHosts: ['pgmesh-1.internal'],
        limits,
        onRefused: (reason, remote) => {
          told.push(`${reason}@${remote}`)
          throw new Error('a throwing listener changes nothing')
        },
      },
    )
    port = server.address.port
  })
  after(() => server.close())

  const get = (path: string, headers: Record<string, string> = {}) =>
    fetch(`http://127.0.0.1:${port}${path}`, { headers, signal: AbortSignal.timeout(5_000) })

  it('answers an unauthenticated PUT with 401 before reading any of its body', async () => {
    // chunked, and not one chunk sent: a server that reads the body first would wait here
    const chunked = await raw(
      port,
      `PUT /v1/config HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n`,
      3_000,
    )
    assert.equal(statusOf(chunked), 401, chunked.data)
    assert.match(chunked.data, /API_UNAUTHORIZED/)
    assert.match(chunked.data, /www-authenticate: Bearer realm="pgmesh"/i)
    assert.ok(chunked.closed, 'the connection is closed, so the body is never drained')
    // a declared 10 MiB body: still 401 (the token comes first), not 413
    const huge = await raw(
      port,
      `PUT /v1/config HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nauthorization: Bearer wrong-token-wrong-token\r\ncontent-length: 10485760\r\n\r\n`,
      3_000,
    )
    assert.equal(statusOf(huge), 401, huge.data)
    assert.equal(puts.length, 0)
    assert.equal(server.refused().unauthorized, 2)
  })

  it('refuses a declared body over maxBodyBytes with 413, unread, even with a token', async () => {
    const r = await raw(
      port,
      `PUT /v1/config HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nauthorization: Bearer ${TOKEN}\r\ncontent-length: ${limits.maxBodyBytes + 1}\r\n\r\n`,
      3_000,
    )
    assert.equal(statusOf(r), 413, r.data)
    assert.ok(r.closed)
    // and a body within the limit goes through to the route
    const res = await fetch(`http://127.0.0.1:${port}/v1/config`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ cluster: { name: 'c2' } }),
      signal: AbortSignal.timeout(5_000),
    })
    assert.equal(res.status, 200, await res.text())
    assert.equal(puts.length, 1)
  })

  it('refuses a Host header naming another host (DNS rebinding) with 421, accepts IP literals and listed names', async () => {
    const rebound = await raw(port, 'GET /v1/config HTTP/1.1\r\nHost: attacker.example:80\r\n\r\n', 3_000)
    assert.equal(statusOf(rebound), 421, rebound.data)
    assert.match(rebound.data, /API_HOST_NOT_ALLOWED/)
    assert.doesNotMatch(rebound.data, /"version"/, 'the config is not in the answer')
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'pgmesh-1.internal', `[::1]:${port}`]) {
      const r = await raw(
        port,
        `GET /v1/config HTTP/1.1\r\nHost: ${host}\r\nconnection: close\r\n\r\n`,
        3_000,
      )
      assert.equal(statusOf(r), 200, `${host}: ${r.data}`)
    }
    assert.equal(server.refused().host, 1)
    assert.ok(told.includes('host@127.0.0.1'), told.join(' '))
  })

  it('closes a connection whose headers do not arrive within headersTimeoutMs (slowloris)', async () => {
    const r = await raw(port, `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nx-slow: `, 5_000)
    assert.ok(r.closed, `still open after ${Math.round(r.ms)} ms`)
    assert.ok(r.data === '' || statusOf(r) === 408, r.data)
  })

  it('answers oversized headers with 431 and random bytes with 400, and keeps serving', async () => {
    const big = await raw(
      port,
      `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nx-big: ${'a'.repeat(limits.maxHeaderBytes + 100)}\r\n\r\n`,
      3_000,
    )
    assert.equal(statusOf(big), 431, big.data.slice(0, 200))
    const junk = await raw(port, Buffer.from([0x16, 0x03, 0x01, 0xff, 0x00, 0x0d, 0x0a, 0x0d, 0x0a]), 3_000)
    assert.equal(statusOf(junk), 400, junk.data)
    assert.equal((await get('/health')).status, 200)
  })

  it('closes connections beyond maxConnections as they are accepted, and serves again once some close', async () => {
    // a server of its own: fetch keeps idle connections to the shared one open
    const own = await startApiServer(
      createControlApi({ source: src, auth }),
      { host: '127.0.0.1', port: 0 },
      {
        auth,
        limits,
      },
    )
    const port = own.address.port
    const held: Socket[] = []
    try {
      const opened = await Promise.all(
        Array.from({ length: limits.maxConnections }, () =>
          raw(port, 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', 1_500, (s) => held.push(s)),
        ),
      )
      for (const o of opened) assert.equal(statusOf(o), 200, 'each connection within the limit is served')
      const extra = await raw(port, 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', 3_000)
      assert.ok(extra.closed, 'the connection over the limit is closed')
      assert.equal(statusOf(extra), 0, 'and gets no answer')
    } finally {
      for (const s of held) s.destroy()
    }
    try {
      const deadline = Date.now() + 5_000
      let status = 0
      while (Date.now() < deadline && status !== 200) {
        status = statusOf(await raw(port, 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', 1_000))
        if (status !== 200) await new Promise((r) => setTimeout(r, 50))
      }
      assert.equal(status, 200)
    } finally {
      await own.close()
    }
  })
})

describe('API read protection', () => {
  const api = (doc: Record<string, unknown>) =>
    NodeConfigSchema.parse({ id: 'n1', insecureDev: true, api: doc }).api

  it('needs a token for reads by default off loopback, and says how to opt out', () => {
    assert.equal(
      (resolveApiPolicy(api({})) as { value: { protectReads: boolean } }).value.protectReads,
      false,
    )
    const v6 = resolveApiPolicy(api({ listen: '[::1]:7947' }))
    assert.ok(v6.ok && !v6.value.protectReads)
    for (const listen of ['0.0.0.0:7947', '198.18.0.11:7947', '[::]:7947']) {
      const r = resolveApiPolicy(api({ listen }))
      assert.ok(!r.ok, listen)
      assert.equal(r.error.code, 'API_READS_UNPROTECTED')
      assert.match(r.error.message, /node\.api\.tokensFile.*node\.api\.protectReads: false/)
      const withTokens = resolveApiPolicy(api({ listen, tokensFile: '/etc/pgmesh/api.tokens' }))
      assert.ok(withTokens.ok && withTokens.value.protectReads, listen)
      const optOut = resolveApiPolicy(api({ listen, protectReads: false }))
      assert.ok(optOut.ok && !optOut.value.protectReads, listen)
    }
  })

  it('a server with read protection answers reads only with a token; /health stays open', async () => {
    // the policy a node bound beyond loopback gets, on a loopback socket
    const policy = resolveApiPolicy(api({ listen: '0.0.0.0:0', tokensFile: '/unused' }))
    assert.ok(policy.ok)
    const auth = { tokens: () => [TOKEN], protectReads: policy.value.protectReads }
    const server = await startApiServer(
      createControlApi({ source: source().src, auth }),
      { host: '127.0.0.1', port: 0 },
      { auth, limits: policy.value.limits },
    )
    try {
      const url = `http://127.0.0.1:${server.address.port}`
      const opts = (headers: Record<string, string> = {}) => ({ headers, signal: AbortSignal.timeout(5_000) })
      assert.equal((await fetch(`${url}/v1/config`, opts())).status, 401)
      assert.equal((await fetch(`${url}/v1/config`, opts({ authorization: `Bearer ${TOKEN}` }))).status, 200)
      assert.equal((await fetch(`${url}/health`, opts())).status, 200)
    } finally {
      await server.close()
    }
  })
})
