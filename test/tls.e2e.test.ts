import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { connect as tlsConnect } from 'node:tls'
import { ClusterStatusSchema, type ListenerConfigInput, ListenerConfigSchema } from '@pgmesh/protocol'
import pg from 'pg'
import { pino } from 'pino'
import { startupPacket } from '../mesh-node/src/proxy/pg-wire.js'
import { ProxyService } from '../mesh-node/src/proxy/proxy-service.js'
import type { BackendTarget } from '../mesh-node/src/proxy/tcp-listener.js'
import { makeCa, makeServerCert, type TestCert } from '../mesh-node/src/tls/test-certs.js'
import { startMeshNode } from './helpers/mesh-cluster.js'
import { freePort, Sandbox, waitFor } from './helpers/processes.js'
import { TESTBED_PASSWORD, Testbed } from './helpers/testbed.js'

const skip =
  process.getuid?.() === 0 ? false : 'the Patroni testbed runs PostgreSQL as the postgres user: needs root'

interface PsqlResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** psql (the real client) with a conninfo string; never throws. */
function psql(conninfo: string, sql: string): Promise<PsqlResult> {
  return new Promise((done) => {
    execFile(
      'psql',
      ['-X', '-At', '-v', 'ON_ERROR_STOP=1', '-c', sql, conninfo],
      { env: { ...process.env, PGPASSWORD: TESTBED_PASSWORD, PGCONNECT_TIMEOUT: '10' }, timeout: 20_000 },
      (e, stdout, stderr) =>
        done({ code: e === null ? 0 : ((e as { code?: number }).code ?? 1), stdout: stdout.trim(), stderr }),
    )
  })
}

/** Bytes sent raw to `port`; resolves with what came back when the proxy closes (or after `ms`). */
function rawExchange(port: number, send: Buffer[], ms = 3_000): Promise<{ got: Buffer; closed: boolean }> {
  return new Promise((done) => {
    const s = connect({ host: '127.0.0.1', port })
    const got: Buffer[] = []
    const t = setTimeout(() => {
      s.destroy()
      done({ got: Buffer.concat(got), closed: false })
    }, ms)
    s.on('error', () => undefined)
    s.on('data', (d: Buffer) => got.push(d))
    s.on('close', () => {
      clearTimeout(t)
      done({ got: Buffer.concat(got), closed: true })
    })
    s.on('connect', () => {
      for (const b of send) s.write(b)
    })
  })
}

const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])

describe('PostgreSQL TLS at the edge, against the real testbed with ssl=on', {
  skip,
  timeout: 300_000,
}, () => {
  const tbDir = join(tmpdir(), `pgmesh-tb-tls-${randomBytes(4).toString('hex')}`)
  let dir: string
  let tb: Testbed
  let ca: TestCert
  let edgeCert: TestCert
  let leaderTarget: BackendTarget
  const log = pino({ level: 'silent' })
  const routable = true
  const proxy = new ProxyService(log, (l) => (l.name.startsWith('none') || !routable ? [] : [leaderTarget]))
  const ports: Record<string, number> = {}

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgmesh-tls-'))
    ca = await makeCa(dir)
    const dbCert = await makeServerCert(dir, ca, 'db')
    edgeCert = await makeServerCert(dir, ca, 'edge')
    tb = await Testbed.up(tbDir, { TB_SSL_CERT: dbCert.cert, TB_SSL_KEY: dbCert.key })
    const leader = tb.node(await tb.leader())
    leaderTarget = { id: leader.name, host: '127.0.0.1', port: leader.pgPort, weight: 1, maxconn: 100 }
    for (const n of ['reencrypt', 'plainBackend', 'tagged', 'noneQueued', 'noneFull'])
      ports[n] = await freePort()
    const terminate = {
      mode: 'terminate' as const,
      certFile: edgeCert.cert,
      keyFile: edgeCert.key,
      handshakeTimeoutMs: 500,
    }
    const listeners: ListenerConfigInput[] = [
      {
        name: 'reencrypt',
        bind: `127.0.0.1:${ports.reencrypt}`,
        role: 'primary',
        tls: { ...terminate, backend: 'verify-full', backendCaFile: ca.cert },
        applicationNameAddHost: true,
      },
      {
        name: 'plainBackend',
        bind: `127.0.0.1:${ports.plainBackend}`,
        role: 'primary',
        tls: terminate,
      },
      {
        name: 'tagged',
        bind: `127.0.0.1:${ports.tagged}`,
        role: 'primary',
        applicationNameAddHost: true,
      },
      {
        name: 'noneQueued',
        bind: `127.0.0.1:${ports.noneQueued}`,
        role: 'primary',
        queueTimeoutMs: 300,
      },
      { name: 'noneFull', bind: `127.0.0.1:${ports.noneFull}`, role: 'primary', queueSize: 0 },
    ]
    const r = await proxy.apply(listeners.map((l) => ListenerConfigSchema.parse(l)))
    assert.deepEqual(r.failed, [])
  })

  after(async () => {
    await proxy.drain()
    if (tb !== undefined) await tb.down()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
    await rm(tbDir, { recursive: true, force: true }).catch(() => undefined)
  })

  const verifyFull = (port: number, extra = '') =>
    `host=127.0.0.1 port=${port} user=postgres dbname=postgres sslmode=verify-full sslrootcert=${ca.cert} ${extra}`
  const SSL_SQL = 'select ssl from pg_stat_ssl where pid = pg_backend_pid()'

  it('psql verify-full against pgmesh, re-encrypted to the database (verify-full)', async () => {
    // SCRAM channel binding ties the password proof to the TLS certificate the client sees, which is
    // pgmesh's, not the database's: through any TLS-terminating proxy it must be off (docs/tls.md)
    const r = await psql(verifyFull(ports.reencrypt!, 'channel_binding=disable'), SSL_SQL)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, 't', 'the database sees a TLS session from pgmesh')
    const bound = await psql(verifyFull(ports.reencrypt!), SSL_SQL)
    assert.notEqual(bound.code, 0, 'channel binding through a terminating proxy cannot succeed')
    assert.match(bound.stderr, /channel binding/)
  })

  it('psql verify-full against pgmesh, plain to the database', async () => {
    const r = await psql(verifyFull(ports.plainBackend!), SSL_SQL)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, 'f', 'pgmesh talks plain to the database')
  })

  it('a plain client is refused by a TLS-only listener with the reason', async () => {
    const r = await psql(
      `host=127.0.0.1 port=${ports.plainBackend} user=postgres dbname=postgres sslmode=disable`,
      'select 1',
    )
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /pgmesh: listener "plainBackend" requires TLS/)
    assert.ok((proxy.status().find((l) => l.name === 'plainBackend')?.edge?.plainRefused ?? 0) >= 1)
  })

  it('direct TLS (PostgreSQL 17 style: ClientHello first, ALPN postgresql) reaches the database', async () => {
    const caPem = await readFile(ca.cert)
    const first = await new Promise<{ alpn: string | false; byte: number }>((done, fail) => {
      const s = tlsConnect({
        host: '127.0.0.1',
        port: ports.plainBackend!,
        ca: caPem,
        ALPNProtocols: ['postgresql'],
      })
      const t = setTimeout(() => fail(new Error('no answer')), 5_000)
      s.on('error', fail)
      s.on('secureConnect', () =>
        s.write(
          startupPacket([
            ['user', 'postgres'],
            ['database', 'postgres'],
          ]),
        ),
      )
      s.once('data', (d: Buffer) => {
        clearTimeout(t)
        done({ alpn: s.alpnProtocol ?? false, byte: d[0]! })
        s.destroy()
      })
    })
    assert.equal(first.alpn, 'postgresql')
    assert.equal(String.fromCharCode(first.byte), 'R', 'the database asked for authentication')
  })

  it('application_name carries the client address in pg_stat_activity (plain and terminated)', async () => {
    const sql = 'select application_name from pg_stat_activity where pid = pg_backend_pid()'
    const plain = await psql(
      `host=127.0.0.1 port=${ports.tagged} user=postgres dbname=postgres sslmode=disable application_name=tagtest`,
      sql,
    )
    assert.equal(plain.code, 0, plain.stderr)
    assert.match(plain.stdout, /^tagtest - 127\.0\.0\.1:\d+$/)
    const tls = await psql(
      verifyFull(ports.reencrypt!, 'application_name=overtls channel_binding=disable'),
      sql,
    )
    assert.equal(tls.code, 0, tls.stderr)
    assert.match(tls.stdout, /^overtls - 127\.0\.0\.1:\d+$/)
  })

  it('refusals are ErrorResponses psql shows: no primary within the queue timeout, listener full', async () => {
    const queued = await psql(
      `host=127.0.0.1 port=${ports.noneQueued} user=postgres dbname=postgres`,
      'select 1',
    )
    assert.notEqual(queued.code, 0)
    assert.match(queued.stderr, /pgmesh: no primary server took the connection within 300 ms/)
    const full = await psql(`host=127.0.0.1 port=${ports.noneFull} user=postgres dbname=postgres`, 'select 1')
    assert.notEqual(full.code, 0)
    assert.match(full.stderr, /pgmesh: listener "noneFull" is full/)
  })

  it('bad input at the edge is counted and dropped; the listener keeps serving', async () => {
    const port = ports.plainBackend!
    const before = { ...proxy.status().find((l) => l.name === 'plainBackend')!.edge! }
    // truncated SSLRequest
    assert.equal((await rawExchange(port, [SSL_REQUEST.subarray(0, 5)], 300)).closed, false)
    const truncated = connect({ host: '127.0.0.1', port })
    truncated.on('error', () => undefined)
    truncated.on('connect', () => truncated.end(SSL_REQUEST.subarray(0, 5)))
    // oversized startup length: an ErrorResponse, then the close
    const big = Buffer.alloc(8)
    big.writeUInt32BE(1_000_000, 0)
    big.writeUInt32BE(196608, 4)
    const oversized = await rawExchange(port, [big])
    assert.equal(oversized.closed, true)
    assert.match(oversized.got.toString('latin1'), /C08P01\0/)
    // garbage ClientHello after the 'S'
    const garbage = await rawExchange(port, [
      SSL_REQUEST,
      Buffer.concat([Buffer.from([0x16, 3, 1, 0, 40]), randomBytes(40)]),
    ])
    assert.equal(garbage.closed, true)
    // direct TLS garbage
    assert.equal(
      (await rawExchange(port, [Buffer.concat([Buffer.from([0x16]), randomBytes(200)])])).closed,
      true,
    )
    // a handshake that never finishes: closed at handshakeTimeoutMs (500)
    const silent = await rawExchange(port, [SSL_REQUEST], 5_000)
    assert.equal(silent.closed, true, 'a silent client is closed by the handshake timeout')
    await waitFor('the drops to be counted', 5_000, async () => {
      const e = proxy.status().find((l) => l.name === 'plainBackend')!.edge!
      return e.badStartup >= before.badStartup + 2 &&
        e.tlsFailures >= before.tlsFailures + 2 &&
        e.handshakeTimeouts >= before.handshakeTimeouts + 1
        ? true
        : undefined
    })
    const r = await psql(verifyFull(port), 'select 1')
    assert.equal(r.code, 0, r.stderr)
  })

  it('a pgmesh node terminates TLS from its config; /v1/status and /metrics show the certificate', async () => {
    const sb = new Sandbox()
    await sb.init('tls-node')
    try {
      const port = await freePort()
      const pw = join(sb.dir, 'pgpass')
      await writeFile(pw, `${TESTBED_PASSWORD}\n`, { mode: 0o600 })
      const cfg = join(sb.dir, 'tls.yaml')
      await writeFile(
        cfg,
        [
          'cluster:',
          `  databaseChecks: { passwordFile: ${pw} }`,
          '  databases:',
          ...tb.nodes.map((n) => `    - { name: ${n.name}, address: "127.0.0.1:${n.pgPort}" }`),
          '  listeners:',
          `    - { name: write, bind: "127.0.0.1:${port}", role: primary, tls: { mode: terminate, certFile: ${edgeCert.cert}, keyFile: ${edgeCert.key}, backend: verify-full, backendCaFile: ${ca.cert} } }`,
          '',
        ].join('\n'),
      )
      const node = await startMeshNode(sb, { id: 'tls1', configFile: cfg, logLevel: 'warn' })
      await waitFor('psql verify-full through the node', 60_000, async () => {
        const r = await psql(verifyFull(port, 'channel_binding=disable'), SSL_SQL)
        return r.code === 0 && r.stdout === 't' ? true : undefined
      })
      const status = ClusterStatusSchema.parse(await (await fetch(`${node.apiUrl}/v1/status`)).json())
      const l = status.listeners.find((x) => x.name === 'write')!
      assert.equal(l.tls?.mode, 'terminate')
      assert.match(l.tls?.certificate?.subject ?? '', /CN=edge/)
      const key = await readFile(edgeCert.key, 'utf8')
      assert.ok(!JSON.stringify(status).includes(key.split('\n')[1]!), 'no key material in the status')
      const metrics = await (await fetch(`${node.apiUrl}/metrics`)).text()
      assert.match(metrics, /pgmesh_tls_certificate_expiry_seconds\{listener="write"\} \d+/)
      assert.match(metrics, /pgmesh_listener_edge_events_total\{listener="write",event="tls_session"\} [1-9]/)
    } finally {
      await sb.cleanup()
    }
  })

  it('certificate rotation: new connections get the new certificate, an open session keeps running', async () => {
    const caPem = await readFile(ca.cert)
    const session = new pg.Client({
      host: '127.0.0.1',
      port: ports.plainBackend,
      user: 'postgres',
      password: TESTBED_PASSWORD,
      database: 'postgres',
      ssl: { ca: caPem },
    })
    await session.connect()
    try {
      const oldFp = proxy.status().find((l) => l.name === 'plainBackend')!.tls!.certificate!.fingerprint256
      const next = await makeServerCert(dir, { cert: ca.cert, key: ca.key }, 'edge-next')
      await rename(next.cert, edgeCert.cert)
      await rename(next.key, edgeCert.key)
      assert.deepEqual(await proxy.reloadTls(), [])
      const status = proxy.status().find((l) => l.name === 'plainBackend')!.tls!.certificate!
      assert.notEqual(status.fingerprint256, oldFp)
      assert.ok(status.expiresInMs > 0 && status.expiresInMs <= 2 * 86_400_000 + 60_000)
      assert.ok(proxy.certificateExpiries().some((e) => e.listener === 'plainBackend' && e.remainingMs > 0))
      const seen = await new Promise<string>((done, fail) => {
        const s = tlsConnect({
          host: '127.0.0.1',
          port: ports.plainBackend!,
          ca: caPem,
          ALPNProtocols: ['postgresql'],
        })
        s.on('error', fail)
        s.on('secureConnect', () => {
          done(s.getPeerCertificate().fingerprint256)
          s.destroy()
        })
      })
      assert.equal(seen, status.fingerprint256)
      await sleep(50)
      const r = await session.query<{ one: number }>('select 1 as one')
      assert.equal(r.rows[0]!.one, 1, 'the session opened before the rotation still answers')
    } finally {
      await session.end().catch(() => undefined)
    }
  })
})
