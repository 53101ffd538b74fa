import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { createSecureContext, type SecureContext, TLSSocket, connect as tlsConnect } from 'node:tls'
import { pino } from 'pino'
import { makeCa, makeServerCert, type TestCert } from '../tls/test-certs.js'
import { SSL_REQUEST, startupPacket, startupParameters } from './pg-wire.js'
import { type BackendTarget, type ListenerSpec, TcpListener } from './tcp-listener.js'

const log = pino({ level: 'silent' })
const AUTH_OK = Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0])
const servers: Server[] = []
const listeners: TcpListener[] = []
/** every socket the fake servers accepted, closed at the end */
const sockets: Socket[] = []
let dir: string
let ca: TestCert
let caPem: Buffer
let edge: SecureContext
let edgeFingerprint: string
let db: { cert: Buffer; key: Buffer }

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pgmesh-tls-unit-'))
  ca = await makeCa(dir)
  caPem = await readFile(ca.cert)
  const e = await makeServerCert(dir, ca, 'edge')
  edge = createSecureContext({ cert: await readFile(e.cert), key: await readFile(e.key) })
  edgeFingerprint = new (await import('node:crypto')).X509Certificate(await readFile(e.cert)).fingerprint256
  const d = await makeServerCert(dir, ca, 'db')
  db = { cert: await readFile(d.cert), key: await readFile(d.key) }
})

after(async () => {
  for (const l of listeners) await l.drain(0)
  for (const s of sockets) s.destroy()
  for (const s of servers) await new Promise((r) => s.close(r))
  await rm(dir, { recursive: true, force: true })
})

interface Fake {
  target: BackendTarget
  /** per session: whether it came over TLS, and the startup parameters */
  readonly sessions: { tls: boolean; params: [string, string][] | null }[]
  /** raw 16-byte CancelRequests received */
  readonly cancels: Buffer[]
}

/**
 * A fake PostgreSQL server: answers SSLRequest with S (TLS with the db certificate) when `tls`,
 * else N; reads the startup packet, answers AuthenticationOk and `ok:<name>`, then echoes.
 */
async function fakePg(name: string, tls: boolean): Promise<Fake> {
  const fake: Fake = {
    target: { id: name, host: '127.0.0.1', port: 0, weight: 1, maxconn: 100 },
    sessions: [],
    cancels: [],
  }
  const serve = (s: Socket, overTls: boolean, first: Buffer) => {
    let buf = first
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      if (buf.length < 8) return
      const length = buf.readUInt32BE(0)
      const code = buf.readUInt32BE(4)
      if (length === 8 && code === 80877103 && !overTls) {
        s.off('data', onData)
        if (!tls) {
          s.write('N')
          serve(s, false, buf.subarray(8))
          return
        }
        s.write('S')
        const t = new TLSSocket(s, { isServer: true, secureContext: createSecureContext(db) })
        t.on('error', () => undefined)
        serve(t, true, Buffer.alloc(0))
        return
      }
      if (buf.length < length) return
      s.off('data', onData)
      if (code === 80877102) {
        fake.cancels.push(buf.subarray(0, 16))
        s.end()
        return
      }
      fake.sessions.push({ tls: overTls, params: startupParameters(buf.subarray(0, length)) })
      s.write(Buffer.concat([AUTH_OK, Buffer.from(`ok:${name}`)]))
      s.on('data', (d2: Buffer) => s.write(d2))
    }
    s.on('data', onData)
    if (first.length > 0) onData(Buffer.alloc(0))
  }
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.push(s)
    s.on('error', () => undefined)
    serve(s, false, Buffer.alloc(0))
  })
  servers.push(server)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  fake.target = { ...fake.target, port: (server.address() as { port: number }).port }
  return fake
}

function spec(over: Partial<ListenerSpec> = {}): ListenerSpec {
  return {
    name: 'tls',
    host: '127.0.0.1',
    port: 0,
    balance: 'first',
    maxconn: 100,
    queueSize: 10,
    queueTimeoutMs: 1_000,
    connectTimeoutMs: 1_000,
    idleTimeoutMs: 10_000,
    keepAliveMs: 0,
    startupPeek: true,
    role: 'primary',
    handshakeTimeoutMs: 1_000,
    cancelFanoutPerSecond: 100,
    tls: { context: edge, requireClientTls: true },
    ...over,
  }
}

async function listen(
  s: ListenerSpec,
  targets: () => readonly BackendTarget[],
  cancelTargets?: () => readonly BackendTarget[],
) {
  const l = new TcpListener(s, { candidates: targets, ...(cancelTargets ? { cancelTargets } : {}) }, log)
  listeners.push(l)
  return { l, port: (await l.start()).port }
}

/** Collects what `s` receives until `until` holds or it closes (bounded). */
function collect(s: Socket, until: (b: Buffer) => boolean, ms = 4_000): Promise<Buffer> {
  return new Promise((done) => {
    let got = Buffer.alloc(0)
    const finish = () => {
      clearTimeout(t)
      done(got)
    }
    const t = setTimeout(finish, ms)
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d])
      if (until(got)) finish()
    })
    s.on('close', finish)
  })
}

/** SSLRequest, 'S', TLS (verify-full against the test CA), startup: what the proxy's backend answers. */
async function tlsSession(
  port: number,
  params: [string, string][] = [['user', 'u']],
): Promise<{ got: Buffer; fingerprint: string }> {
  const raw = connect({ host: '127.0.0.1', port })
  raw.on('error', () => undefined)
  await new Promise((r) => raw.once('connect', r))
  raw.write(SSL_REQUEST)
  const s = await collect(raw, (b) => b.length >= 1)
  assert.equal(s.toString(), 'S')
  const t = tlsConnect({ socket: raw, ca: caPem, servername: 'localhost' })
  t.on('error', () => undefined)
  await new Promise((r) => t.once('secureConnect', r))
  const fingerprint = t.getPeerCertificate().fingerprint256
  t.write(startupPacket(params))
  const got = await collect(t, (b) => b.includes('ok:'))
  t.destroy()
  return { got, fingerprint }
}

describe('TLS at the PostgreSQL edge (fake backends, real TLS)', () => {
  it('terminates SSLRequest + TLS, plain to the backend, application_name tagged', async () => {
    const be = await fakePg('plain-be', false)
    const { l, port } = await listen(spec({ applicationNameAddHost: true }), () => [be.target])
    const { got, fingerprint } = await tlsSession(port, [
      ['user', 'u'],
      ['application_name', 'app'],
    ])
    assert.ok(got.includes('ok:plain-be'), got.toString('latin1'))
    assert.equal(fingerprint, edgeFingerprint)
    assert.equal(be.sessions.length, 1)
    assert.equal(be.sessions[0]!.tls, false)
    const app = be.sessions[0]!.params!.find(([k]) => k === 'application_name')![1]
    assert.match(app, /^app - 127\.0\.0\.1:\d+$/)
    assert.equal(l.edge.tlsSessions, 1)
  })

  it('re-encrypts to the backend with verify-full; a wrong server name is refused', async () => {
    const be = await fakePg('tls-be', true)
    const { port } = await listen(spec({ backendTls: { ca: caPem, postgres: true } }), () => [be.target])
    const { got } = await tlsSession(port)
    assert.ok(got.includes('ok:tls-be'))
    assert.equal(be.sessions[0]!.tls, true, 'the backend saw TLS')

    const { l: wrong, port: wrongPort } = await listen(
      spec({
        queueTimeoutMs: 400,
        backendTls: { ca: caPem, postgres: true, serverName: 'not-the-db.example' },
      }),
      () => [be.target],
    )
    const refused = await tlsSession(wrongPort)
    assert.match(refused.got.toString('utf8'), /C57P03\0.*no primary server took the connection/s)
    assert.ok(wrong.edge.backendTlsFailures >= 1)
    assert.equal(be.sessions.length, 1, 'no session reached the backend whose name did not verify')
  })

  it('direct TLS needs ALPN postgresql', async () => {
    const be = await fakePg('direct-be', false)
    const { l, port } = await listen(spec(), () => [be.target])
    const ok = tlsConnect({
      host: '127.0.0.1',
      port,
      ca: caPem,
      servername: 'localhost',
      ALPNProtocols: ['postgresql'],
    })
    ok.on('error', () => undefined)
    await new Promise((r) => ok.once('secureConnect', r))
    ok.write(startupPacket([['user', 'u']]))
    assert.ok((await collect(ok, (b) => b.includes('ok:'))).includes('ok:direct-be'))
    ok.destroy()
    const noAlpn = tlsConnect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost' })
    noAlpn.on('error', () => undefined)
    await collect(noAlpn as unknown as Socket, () => false, 2_000)
    assert.equal(l.edge.tlsFailures, 1)
  })

  it('refuses a plain client with 28000, and counts bad input and silent clients, still serving', async () => {
    const be = await fakePg('bad-be', false)
    const { l, port } = await listen(spec({ handshakeTimeoutMs: 300 }), () => [be.target])
    const plain = connect({ host: '127.0.0.1', port })
    plain.on('connect', () => plain.write(startupPacket([['user', 'u']])))
    const refused = (await collect(plain, () => false)).toString('utf8')
    assert.match(refused, /C28000\0Mpgmesh: listener "tls" requires TLS/)

    const send = async (bytes: Buffer[], end = false) => {
      const s = connect({ host: '127.0.0.1', port })
      s.on('error', () => undefined)
      s.on('connect', () => {
        for (const b of bytes) s.write(b)
        if (end) s.end()
      })
      return collect(s, () => false)
    }
    const big = Buffer.alloc(8)
    big.writeUInt32BE(100_000, 0)
    big.writeUInt32BE(196608, 4)
    assert.match((await send([big])).toString('latin1'), /C08P01/)
    await send([SSL_REQUEST.subarray(0, 3)], true)
    await send([SSL_REQUEST, Buffer.concat([Buffer.from([0x16, 3, 1, 0, 50]), randomBytes(50)])])
    const started = performance.now()
    await send([])
    assert.ok(performance.now() - started >= 250, 'a silent client is held until the handshake timeout')
    // the counters move once the proxy has seen the close, which may be just after the client did
    const want = { plainRefused: 1, badStartup: 2, tlsFailures: 1, handshakeTimeouts: 1 }
    const seen = () => ({
      plainRefused: l.edge.plainRefused,
      badStartup: l.edge.badStartup,
      tlsFailures: l.edge.tlsFailures,
      handshakeTimeouts: l.edge.handshakeTimeouts,
    })
    for (let i = 0; i < 200 && JSON.stringify(seen()) !== JSON.stringify(want); i++) await sleep(10)
    assert.deepEqual(seen(), want)
    assert.ok((await tlsSession(port)).got.includes('ok:bad-be'), 'still serving')
  })

  it('random bytes, after an SSLRequest or not, never stop the listener', async () => {
    const be = await fakePg('fuzz-be', false)
    const { l, port } = await listen(spec({ handshakeTimeoutMs: 300, applicationNameAddHost: true }), () => [
      be.target,
    ])
    const shapes = [
      () => randomBytes(1 + Math.floor(Math.random() * 300)),
      () => Buffer.concat([SSL_REQUEST, randomBytes(1 + Math.floor(Math.random() * 300))]),
      () => Buffer.concat([Buffer.from([0x16, 3, 3]), randomBytes(Math.floor(Math.random() * 300))]),
      () => {
        const b = randomBytes(8 + Math.floor(Math.random() * 64))
        b.writeUInt32BE(b.length, 0)
        b.writeUInt32BE(196608, 4)
        return b
      },
    ]
    await Promise.all(
      Array.from({ length: 120 }, async (_, i) => {
        const s = connect({ host: '127.0.0.1', port })
        s.on('error', () => undefined)
        s.on('connect', () => s.end(shapes[i % shapes.length]!()))
        await collect(s, () => false, 3_000)
      }),
    )
    const e = l.edge
    assert.ok(e.badStartup + e.tlsFailures + e.handshakeTimeouts + e.plainRefused > 0, JSON.stringify(e))
    assert.ok((await tlsSession(port)).got.includes('ok:fuzz-be'), 'still serving after the garbage')
  })

  it('a CancelRequest goes to every cancel target, once each', async () => {
    const a = await fakePg('cancel-a', false)
    const b = await fakePg('cancel-b', false)
    const { l, port } = await listen(
      spec({ tls: { context: edge, requireClientTls: false } }),
      () => [a.target],
      () => [a.target, b.target, a.target],
    )
    const cancel = Buffer.alloc(16)
    cancel.writeUInt32BE(16, 0)
    cancel.writeUInt32BE(80877102, 4)
    cancel.writeUInt32BE(4242, 8)
    cancel.writeUInt32BE(77, 12)
    const s = connect({ host: '127.0.0.1', port })
    s.on('connect', () => s.write(cancel))
    await collect(s, () => false)
    for (let i = 0; i < 100 && a.cancels.length + b.cancels.length < 2; i++) await sleep(10)
    assert.deepEqual(a.cancels, [cancel])
    assert.deepEqual(b.cancels, [cancel])
    assert.equal(l.edge.cancelsForwarded, 2)
  })

  it('with the fan-out off a CancelRequest is spliced to the backend the balancer picks', async () => {
    const a = await fakePg('off-a', false)
    const b = await fakePg('off-b', false)
    const { l, port } = await listen(
      spec({ cancelFanoutPerSecond: 0, tls: { context: edge, requireClientTls: false } }),
      () => [b.target],
      () => [a.target, b.target],
    )
    const cancel = Buffer.alloc(16)
    cancel.writeUInt32BE(16, 0)
    cancel.writeUInt32BE(80877102, 4)
    const s = connect({ host: '127.0.0.1', port })
    s.on('connect', () => s.write(cancel))
    await collect(s, () => false)
    for (let i = 0; i < 100 && b.cancels.length === 0; i++) await sleep(10)
    assert.deepEqual(b.cancels, [cancel])
    assert.deepEqual(a.cancels, [])
    assert.equal(l.edge.cancelsForwarded, 0)
  })

  it('a servers listener is plain TLS both ways (TLS from the first byte, verify-full to the server)', async () => {
    const { createServer: createTlsServer } = await import('node:tls')
    let sawTls = false
    const tlsEcho = createTlsServer({ ...db }, (s) => {
      sawTls = true
      s.on('error', () => undefined)
      s.pipe(s)
    })
    servers.push(tlsEcho as unknown as Server)
    await new Promise<void>((r) => tlsEcho.listen(0, '127.0.0.1', r))
    const target = {
      id: 'tls-echo',
      host: '127.0.0.1',
      port: (tlsEcho.address() as { port: number }).port,
      weight: 1,
      maxconn: 10,
    }
    const { port } = await listen(
      spec({
        startupPeek: false,
        role: 'backend',
        cancelFanoutPerSecond: 0,
        backendTls: { ca: caPem, postgres: false },
      }),
      () => [target],
    )
    const c = tlsConnect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost' })
    c.on('error', () => undefined)
    await new Promise((r) => c.once('secureConnect', r))
    const got = collect(c, (b) => b.includes('hello over tls'))
    c.write('hello over tls')
    assert.ok((await got).includes('hello over tls'))
    assert.equal(sawTls, true)
    c.destroy()
  })

  it('a new certificate (update) reaches new connections; an open session keeps going', async () => {
    const be = await fakePg('rotate-be', false)
    const { l, port } = await listen(spec(), () => [be.target])
    const raw = connect({ host: '127.0.0.1', port })
    raw.on('error', () => undefined)
    await new Promise((r) => raw.once('connect', r))
    raw.write(SSL_REQUEST)
    await collect(raw, (b) => b.length >= 1)
    const open = tlsConnect({ socket: raw, ca: caPem, servername: 'localhost' })
    await new Promise((r) => open.once('secureConnect', r))
    open.write(startupPacket([['user', 'u']]))
    await collect(open, (b) => b.includes('ok:'))
    const next = await makeServerCert(dir, ca, 'edge-next')
    const ctx = createSecureContext({ cert: await readFile(next.cert), key: await readFile(next.key) })
    l.update({ ...l.spec, tls: { context: ctx, requireClientTls: true } })
    const after = await tlsSession(port)
    assert.notEqual(after.fingerprint, edgeFingerprint)
    open.removeAllListeners('data')
    const echoed = collect(open, (b) => b.includes('still here'))
    open.write('still here')
    assert.ok((await echoed).includes('still here'), 'the session from before the rotation still works')
    open.destroy()
  })
})
