import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import pgLib from 'pg'
import { probePatroni } from '../mesh-node/src/database/probe-patroni.js'
import {
  PostgresProber,
  type PostgresTarget,
  probePostgres,
} from '../mesh-node/src/database/probe-postgres.js'
import { waitFor } from './helpers/processes.js'
import { TESTBED_PASSWORD, Testbed } from './helpers/testbed.js'

const skip =
  process.getuid?.() === 0 ? false : 'the Patroni testbed runs PostgreSQL as the postgres user: needs root'

describe('a real Patroni cluster, and what the database probes see of it', { skip, timeout: 240_000 }, () => {
  // not inside a mode-700 sandbox: the postgres user must reach it
  const dir = join(tmpdir(), `pgmesh-tb-${randomBytes(4).toString('hex')}`)
  let tb: Testbed
  const pg = (name: string): PostgresTarget => ({
    host: '127.0.0.1',
    port: tb.node(name).pgPort,
    user: 'postgres',
    password: TESTBED_PASSWORD,
    database: 'postgres',
  })

  before(async () => {
    tb = await Testbed.up(dir)
  })

  after(async () => {
    if (tb !== undefined) await tb.down()
    assert.ok(!existsSync(dir), 'the testbed removed its directory')
  })

  it('has one writable leader and two streaming replicas, by Patroni and by the database itself', async () => {
    const leader = await tb.leader()
    assert.match(leader, /^n[123]$/)
    for (const n of tb.nodes) {
      const db = await probePostgres(pg(n.name), 2_000)
      const api = await probePatroni(n.apiUrl, 2_000)
      assert.equal(db.reachable, true, `${n.name}: ${db.error}`)
      assert.equal(db.writable, n.name === leader, `${n.name} writable`)
      assert.equal(api.role, n.name === leader ? 'primary' : 'replica')
      assert.equal(db.timeline, api.timeline)
      if (n.name !== leader) assert.equal(typeof db.lagBytes, 'number')
    }
  })

  it('a hung Patroni API (SIGSTOP) times out its probe while the database still answers writable', async () => {
    const leader = await tb.leader()
    const pid = await tb.patroniPid(leader)
    process.kill(pid, 'SIGSTOP')
    try {
      const started = Date.now()
      const api = await probePatroni(tb.node(leader).apiUrl, 500)
      assert.equal(api.reachable, false)
      assert.ok(Date.now() - started < 2_000, 'the probe honours its timeout')
      const db = await probePostgres(pg(leader), 2_000)
      assert.equal(db.writable, true)
    } finally {
      process.kill(pid, 'SIGCONT')
    }
  })

  it('a switchover moves writes: the new leader is writable on a higher timeline, the old one is not', async () => {
    const from = await tb.leader()
    const to = tb.nodes.find((n) => n.name !== from)!.name
    const before = await probePostgres(pg(from), 2_000)
    await tb.switchover(from, to)
    const after = await waitFor(
      `${to} to accept writes`,
      30_000,
      async () => {
        const o = await probePostgres(pg(to), 1_000)
        return o.writable ? o : undefined
      },
      200,
    )
    assert.ok(
      (after.timeline ?? 0) > (before.timeline ?? 0),
      `timeline ${after.timeline} after ${before.timeline}`,
    )
    await waitFor(
      `${from} to be a replica`,
      30_000,
      async () => {
        const o = await probePostgres(pg(from), 1_000)
        return o.reachable && !o.writable ? true : undefined
      },
      200,
    )
  })

  it('a closed port is unreachable, with the reason', async () => {
    const o = await probePostgres({ ...pg('n1'), port: 1 }, 1_000)
    assert.equal(o.reachable, false)
    assert.match(o.error ?? '', /ECONNREFUSED/)
    const api = await probePatroni('http://127.0.0.1:1', 1_000)
    assert.equal(api.reachable, false)
  })

  it('a kept check connection is one backend across probes, and comes back after the server drops it', async () => {
    const leader = await tb.leader()
    const prober = new PostgresProber(pg(leader))
    const checkBackends = () => countChecks(pg(leader))
    try {
      for (let i = 0; i < 5; i++) assert.equal((await prober.probe(2_000)).writable, true)
      assert.equal(await checkBackends(), 1, 'five probes, one connection')
      await runSql(
        pg(leader),
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgmesh-check'",
      )
      const after: boolean[] = []
      for (let i = 0; i < 3; i++) after.push((await prober.probe(2_000)).writable)
      assert.equal(after.at(-1), true, `probes after the drop: ${after.join()}`)
      assert.equal(await checkBackends(), 1)
    } finally {
      prober.close()
    }
  })
})

async function runSql(t: PostgresTarget, text: string): Promise<{ n: number }[]> {
  const c = new pgLib.Client({ ...t, connectionTimeoutMillis: 5_000 })
  await c.connect()
  try {
    return (await c.query<{ n: number }>(text)).rows
  } finally {
    await c.end().catch(() => undefined)
  }
}

async function countChecks(t: PostgresTarget): Promise<number> {
  const rows = await runSql(
    t,
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'pgmesh-check'",
  )
  return rows[0]?.n ?? 0
}
