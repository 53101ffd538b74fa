import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { rm } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { type ListenerConfigInput, ListenerConfigSchema } from '@pgmesh/protocol'
import pg from 'pg'
import { pino } from 'pino'
import { ProxyService } from '../mesh-node/src/proxy/proxy-service.js'
import type { BackendTarget } from '../mesh-node/src/proxy/tcp-listener.js'
import { freePort, waitFor } from './helpers/processes.js'
import { TESTBED_PASSWORD, Testbed } from './helpers/testbed.js'

const skip =
  process.getuid?.() === 0 ? false : 'the Patroni testbed runs PostgreSQL as the postgres user: needs root'

const SLEEP_SQL = 'select pg_sleep(60)'

/** Sessions running `SLEEP_SQL` on a database node, seen directly (not through pgmesh). */
async function sleepers(port: number): Promise<number> {
  const c = new pg.Client({
    host: '127.0.0.1',
    port,
    user: 'postgres',
    password: TESTBED_PASSWORD,
    database: 'postgres',
  })
  await c.connect()
  try {
    const r = await c.query<{ n: number }>(
      "select count(*)::int as n from pg_stat_activity where query = $1 and state = 'active'",
      [SLEEP_SQL],
    )
    return r.rows[0]!.n
  } finally {
    await c.end().catch(() => undefined)
  }
}

/** A CancelRequest for the session `pid`/`secret`, sent raw to `port`; resolves when the proxy closes it. */
function sendCancelTo(port: number, pid: number, secret: number): Promise<void> {
  const b = Buffer.alloc(16)
  b.writeUInt32BE(16, 0)
  b.writeUInt32BE(80877102, 4)
  b.writeUInt32BE(pid, 8)
  b.writeUInt32BE(secret >>> 0, 12)
  return new Promise((done) => {
    const s = connect({ host: '127.0.0.1', port })
    const t = setTimeout(() => s.destroy(), 5_000)
    s.on('error', () => undefined)
    s.on('connect', () => s.write(b))
    s.on('close', () => {
      clearTimeout(t)
      done()
    })
  })
}

describe('cancel requests reach the server holding the session', { skip, timeout: 300_000 }, () => {
  const tbDir = join(tmpdir(), `pgmesh-tb-cancel-${randomBytes(4).toString('hex')}`)
  let tb: Testbed
  let replicas: BackendTarget[] = []
  let all: BackendTarget[] = []
  const log = pino({ level: 'silent' })
  // two pgmesh nodes' proxies: each routes its replica listener over both replicas
  const route = () => replicas
  const cancelTargets = () => all
  const nodeA = new ProxyService(log, route, { cancelTargets })
  const nodeB = new ProxyService(log, route, { cancelTargets })
  const ports = { a: 0, b: 0, aTls: 0 }

  before(async () => {
    tb = await Testbed.up(tbDir)
    const leader = await tb.leader()
    all = tb.nodes.map((n) => ({ id: n.name, host: '127.0.0.1', port: n.pgPort, weight: 1, maxconn: 100 }))
    replicas = all.filter((t) => t.id !== leader)
    assert.equal(replicas.length, 2)
    ports.a = await freePort()
    ports.b = await freePort()
    const listener = (port: number): ListenerConfigInput => ({
      name: 'read',
      bind: `127.0.0.1:${port}`,
      role: 'replica',
      balance: 'roundrobin',
    })
    assert.deepEqual((await nodeA.apply([ListenerConfigSchema.parse(listener(ports.a))])).failed, [])
    assert.deepEqual((await nodeB.apply([ListenerConfigSchema.parse(listener(ports.b))])).failed, [])
  })

  after(async () => {
    await nodeA.drain()
    await nodeB.drain()
    if (tb !== undefined) await tb.down()
    await rm(tbDir, { recursive: true, force: true }).catch(() => undefined)
  })

  const totalSleepers = async () =>
    (await Promise.all(replicas.map((r) => sleepers(r.port)))).reduce((a, b) => a + b, 0)

  it("psql's Ctrl-C through a replica listener with two backends cancels the query, every time", async () => {
    // round robin sends the cancel's own connection to the other replica: without the fan-out
    // every one of these would miss
    for (let i = 0; i < 3; i++) {
      const p = spawn(
        'psql',
        ['-X', '-c', SLEEP_SQL, `host=127.0.0.1 port=${ports.a} user=postgres dbname=postgres`],
        {
          env: { ...process.env, PGPASSWORD: TESTBED_PASSWORD },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      )
      let stderr = ''
      p.stderr.on('data', (d) => {
        stderr += d
      })
      const exited = new Promise<number | null>((done) => p.once('exit', (code) => done(code)))
      try {
        await waitFor('the query to run', 10_000, async () =>
          (await totalSleepers()) === 1 ? true : undefined,
        )
        const t0 = performance.now()
        p.kill('SIGINT')
        const code = await Promise.race([exited, sleep(10_000).then(() => 'timeout' as const)])
        assert.notEqual(code, 'timeout', `psql was not cancelled within 10 s (run ${i})`)
        assert.match(stderr, /canceling statement due to user request/)
        process.stdout.write(`# cancel through node A, run ${i}: ${Math.round(performance.now() - t0)} ms\n`)
      } finally {
        if (p.exitCode === null) p.kill('SIGKILL')
        await exited
      }
    }
    assert.ok((nodeA.status()[0]!.edge?.cancelsForwarded ?? 0) >= 3)
  })

  it('a CancelRequest that arrives at another pgmesh node cancels the query', async () => {
    const c = new pg.Client({
      host: '127.0.0.1',
      port: ports.a,
      user: 'postgres',
      password: TESTBED_PASSWORD,
      database: 'postgres',
    })
    await c.connect()
    try {
      const key = c as unknown as { processID: number; secretKey: number }
      const query = c.query(SLEEP_SQL).then(
        () => 'finished',
        (e: { code?: string }) => e.code ?? 'error',
      )
      await waitFor('the query to run', 10_000, async () =>
        (await totalSleepers()) === 1 ? true : undefined,
      )
      await sendCancelTo(ports.b, key.processID, key.secretKey)
      const outcome = await Promise.race([query, sleep(10_000).then(() => 'timeout')])
      assert.equal(outcome, '57014', 'query_canceled')
    } finally {
      await c.end().catch(() => undefined)
    }
  })

  it('the fan-out is rate limited: a flood of cancels is counted and dropped', async () => {
    const port = await freePort()
    const flood = new ProxyService(log, route, { cancelTargets })
    try {
      await flood.apply([
        ListenerConfigSchema.parse({
          name: 'flood',
          bind: `127.0.0.1:${port}`,
          role: 'replica',
          cancelFanoutPerSecond: 2,
        }),
      ])
      await Promise.all(Array.from({ length: 10 }, (_, i) => sendCancelTo(port, 1_000_000 + i, i)))
      const e = flood.status()[0]!.edge!
      assert.ok(e.cancelsDropped >= 7, `dropped ${e.cancelsDropped}`)
      assert.ok(e.cancelsForwarded <= 3 * all.length, `forwarded ${e.cancelsForwarded}`)
    } finally {
      await flood.drain()
    }
  })
})
