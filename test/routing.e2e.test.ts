import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { BackendsViewSchema } from '@pgmesh/protocol'
import pg from 'pg'
import { startMeshNode, type TestNode } from './helpers/mesh-cluster.js'
import { freePort, Sandbox, waitFor } from './helpers/processes.js'
import { TESTBED_PASSWORD, Testbed, whoAnswers } from './helpers/testbed.js'

const run = promisify(execFile)
const skip =
  process.getuid?.() === 0 ? false : 'the Patroni testbed runs PostgreSQL as the postgres user: needs root'

const MAX_LAG = 1024 * 1024

/** One statement straight to a database node (not through pgmesh). */
async function sqlDirect(port: number, text: string): Promise<void> {
  await sqlValue(port, text)
}

/** The first column of the first row, as text. */
async function sqlValue(port: number, text: string): Promise<string | null> {
  const c = new pg.Client({
    host: '127.0.0.1',
    port,
    user: 'postgres',
    password: TESTBED_PASSWORD,
    database: 'postgres',
    connectionTimeoutMillis: 5_000,
  })
  await c.connect()
  try {
    const r = await c.query<Record<string, unknown>>(text)
    const row = r.rows[0]
    const v = row === undefined ? undefined : Object.values(row)[0]
    return v === undefined || v === null ? null : String(v)
  } finally {
    await c.end().catch(() => undefined)
  }
}

describe('routing PostgreSQL through 3 pgmesh nodes in front of a real Patroni cluster', {
  skip,
  timeout: 300_000,
}, () => {
  const sb = new Sandbox()
  const tbDir = join(tmpdir(), `pgmesh-tb-${randomBytes(4).toString('hex')}`)
  let tb: Testbed
  const nodes: TestNode[] = []
  const writePorts: number[] = []
  const readPorts: number[] = []
  const laggedPorts: number[] = []
  const pgPortOf = (name: string) => tb.node(name).pgPort

  before(async () => {
    await sb.init('routing')
    tb = await Testbed.up(tbDir)
    const pw = join(sb.dir, 'pgpass')
    await writeFile(pw, `${TESTBED_PASSWORD}\n`, { mode: 0o600 })
    for (let i = 1; i <= 3; i++) {
      const w = await freePort()
      const r = await freePort()
      const lagged = await freePort()
      writePorts.push(w)
      readPorts.push(r)
      laggedPorts.push(lagged)
      const cfg = join(sb.dir, `p${i}.yaml`)
      await writeFile(
        cfg,
        [
          'node:',
          `  listenerBinds: { write: "127.0.0.1:${w}", read: "127.0.0.1:${r}", lagged: "127.0.0.1:${lagged}" }`,
          'cluster:',
          '  name: routing',
          '  membership: { heartbeatIntervalMs: 200, suspectTimeoutMs: 800, deadTimeoutMs: 2000 }',
          '  databaseChecks:',
          `    passwordFile: ${pw}`,
          '    intervalMs: 100',
          '    timeoutMs: 500',
          '  databases:',
          ...tb.nodes.map(
            (n) => `    - { name: ${n.name}, address: "127.0.0.1:${n.pgPort}", patroniUrl: "${n.apiUrl}" }`,
          ),
          '  listeners:',
          `    - { name: write, bind: "127.0.0.1:${w}", role: primary, queueTimeoutMs: 20000 }`,
          `    - { name: read, bind: "127.0.0.1:${r}", role: replica, balance: roundrobin }`,
          `    - { name: lagged, bind: "127.0.0.1:${lagged}", role: replica, replicaMaxLagBytes: ${MAX_LAG} }`,
          '',
        ].join('\n'),
      )
      nodes.push(
        await startMeshNode(sb, {
          id: `p${i}`,
          configFile: cfg,
          logLevel: 'info',
          ...(i === 1 ? {} : { join: [nodes[0]!.gossipPort] }),
        }),
      )
    }
  })

  after(async () => {
    await sb.cleanup()
    if (tb !== undefined) await tb.down()
  })

  it('every node agrees on the leader; writes land on it, reads spread over the replicas', async () => {
    const leader = await tb.leader()
    for (const n of nodes) {
      await waitFor(`${n.id} to agree on ${leader}`, 30_000, async () => {
        const b = BackendsViewSchema.parse(await (await fetch(`${n.apiUrl}/v1/backends`)).json())
        return b.agreed.primary === leader && b.agreed.replicas.length === 2 ? true : undefined
      })
    }
    for (const port of writePorts) {
      const r = await whoAnswers(port)
      assert.equal(r.recovery, false)
      assert.equal(r.port, pgPortOf(leader))
    }
    const seen = new Set<number>()
    for (let i = 0; i < 4; i++) {
      const r = await whoAnswers(readPorts[0]!)
      assert.equal(r.recovery, true, 'the read listener routes to replicas')
      seen.add(r.port)
    }
    assert.equal(seen.size, 2, 'round robin over both replicas')
  })

  it('a replica lagging past replicaMaxLagBytes is skipped; with none left, reads go to the primary', async () => {
    const leader = await tb.leader()
    const [a, b] = tb.nodes.filter((n) => n.name !== leader)
    const answers = async (n: number) => {
      const ports = new Set<number>()
      for (let i = 0; i < n; i++) ports.add((await whoAnswers(laggedPorts[0]!)).port)
      return [...ports].sort()
    }
    const lagOf = async (name: string) => {
      const v = BackendsViewSchema.parse(await (await fetch(`${nodes[0]!.apiUrl}/v1/backends`)).json())
      return v.agreed.replicas.find((r) => r.db === name)?.lagBytes ?? null
    }
    // WAL keeps arriving on a paused replica but is not replayed: its lag grows with every write
    const fill = (n: number) =>
      sqlDirect(
        pgPortOf(leader),
        `CREATE TABLE lag_fill_${n} AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 40000) g`,
      )
    // Patroni resumes a paused replay unless it is in maintenance mode
    await tb.maintenance(true)
    try {
      await sqlDirect(a!.pgPort, 'SELECT pg_wal_replay_pause()')
      await fill(1)
      // b receives and replays the same WAL meanwhile: while it has not received all of it, its
      // (replay) lag can be small now and pass the limit a moment later, so wait until b replayed
      // everything the primary wrote
      const end = await sqlValue(pgPortOf(leader), 'SELECT pg_current_wal_lsn()')
      await waitFor(`${a!.name}'s lag to pass ${MAX_LAG} while ${b!.name} has caught up`, 20_000, async () =>
        (await sqlValue(b!.pgPort, `SELECT pg_last_wal_replay_lsn() >= '${end}'::pg_lsn`)) === 'true' &&
        ((await lagOf(a!.name)) ?? 0) > MAX_LAG &&
        ((await lagOf(b!.name)) ?? MAX_LAG + 1) <= MAX_LAG
          ? true
          : undefined,
      )
      assert.deepEqual(await answers(4), [b!.pgPort], 'only the replica within the lag limit')
      assert.equal((await whoAnswers(readPorts[0]!)).recovery, true)

      await sqlDirect(b!.pgPort, 'SELECT pg_wal_replay_pause()')
      await fill(2)
      await waitFor('both replicas to lag', 20_000, async () =>
        ((await lagOf(b!.name)) ?? 0) > MAX_LAG ? true : undefined,
      )
      assert.deepEqual(await answers(4), [pgPortOf(leader)], 'no replica left within the limit: the primary')
      const plain = await whoAnswers(readPorts[0]!)
      assert.equal(plain.recovery, true, 'a listener without the limit still reads from replicas')
    } finally {
      for (const n of [a!, b!])
        await sqlDirect(n.pgPort, 'SELECT pg_wal_replay_resume()').catch(() => undefined)
      await sqlDirect(pgPortOf(leader), 'DROP TABLE IF EXISTS lag_fill_1, lag_fill_2').catch(() => undefined)
      await tb.maintenance(false)
    }
    await waitFor('the replicas to catch up and serve the lagged listener again', 20_000, async () =>
      ((await lagOf(a!.name)) ?? MAX_LAG + 1) <= MAX_LAG && ((await lagOf(b!.name)) ?? MAX_LAG + 1) <= MAX_LAG
        ? true
        : undefined,
    )
    assert.deepEqual(await answers(4), [a!.pgPort, b!.pgPort].sort())
  })

  it('a replica whose WAL stream stopped counts as lagging (received − replayed alone reads 0)', async () => {
    const leader = await tb.leader()
    const [a, b] = tb.nodes.filter((n) => n.name !== leader)
    const lagOf = async (name: string) => {
      const v = BackendsViewSchema.parse(await (await fetch(`${nodes[0]!.apiUrl}/v1/backends`)).json())
      return v.agreed.replicas.find((r) => r.db === name)?.lagBytes ?? null
    }
    const receiver = Number(await sqlValue(a!.pgPort, 'SELECT pid FROM pg_stat_wal_receiver'))
    assert.ok(receiver > 0, `${a!.name} streams from the primary`)
    // the receiver frozen: nothing more arrives, so nothing is waiting to be replayed either
    process.kill(receiver, 'SIGSTOP')
    try {
      await sqlDirect(
        pgPortOf(leader),
        "CREATE TABLE lag_stream AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 40000) g",
      )
      const end = await sqlValue(pgPortOf(leader), 'SELECT pg_current_wal_lsn()')
      await waitFor(`${a!.name} to count as lagging while ${b!.name} has caught up`, 20_000, async () =>
        (await sqlValue(b!.pgPort, `SELECT pg_last_wal_replay_lsn() >= '${end}'::pg_lsn`)) === 'true' &&
        ((await lagOf(a!.name)) ?? 0) > MAX_LAG &&
        ((await lagOf(b!.name)) ?? MAX_LAG + 1) <= MAX_LAG
          ? true
          : undefined,
      )
      // the listener follows the view on its next routing update (a moment after the API shows it)
      const only = async () => {
        const ports = new Set<number>()
        for (let i = 0; i < 4; i++) ports.add((await whoAnswers(laggedPorts[0]!)).port)
        return [...ports]
      }
      await waitFor('the lagged listener to route to the caught-up replica only', 5_000, async () =>
        (await only()).join() === String(b!.pgPort) ? true : undefined,
      )
      assert.deepEqual(await only(), [b!.pgPort], 'only the replica that is not behind the primary')
    } finally {
      process.kill(receiver, 'SIGCONT')
      await sqlDirect(pgPortOf(leader), 'DROP TABLE IF EXISTS lag_stream').catch(() => undefined)
    }
    await waitFor(`${a!.name} to catch up`, 30_000, async () =>
      ((await lagOf(a!.name)) ?? MAX_LAG + 1) <= MAX_LAG ? true : undefined,
    )
  })

  it('pgbench through the write listener completes without errors', async () => {
    const env = { ...process.env, PGPASSWORD: TESTBED_PASSWORD }
    const args = ['-h', '127.0.0.1', '-p', String(writePorts[0]), '-U', 'postgres']
    await run('pgbench', ['-i', '-s', '1', '-q', ...args, 'postgres'], { env, timeout: 60_000 })
    const { stdout } = await run('pgbench', ['-c', '4', '-j', '2', '-T', '5', ...args, 'postgres'], {
      env,
      timeout: 60_000,
    })
    assert.match(stdout, /number of failed transactions: 0 /)
    const tx = Number(/number of transactions actually processed: (\d+)/.exec(stdout)?.[1] ?? 0)
    assert.ok(tx > 0, stdout)
  })

  it("a client that stops reading a large result does not grow the node's memory", async () => {
    const pid = nodes[0]!.proc.pid!
    const rss = () =>
      Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024
    const before = rss()
    // a query for ~200 MB whose answer the client never reads
    const c = new pg.Client({
      host: '127.0.0.1',
      port: writePorts[0]!,
      user: 'postgres',
      password: TESTBED_PASSWORD,
      database: 'postgres',
    })
    c.on('error', () => undefined)
    await c.connect()
    const conn = (c as unknown as { connection: { stream: import('node:net').Socket } }).connection
    conn.stream.pause()
    void c.query("SELECT repeat('x', 1000000) FROM generate_series(1, 200)").catch(() => undefined)
    await sleep(3_000)
    const grown = rss() - before
    conn.stream.destroy()
    assert.ok(grown < 64, `the node's RSS grew by ${grown.toFixed(0)} MiB while a client did not read`)
  })

  it("the leader's Patroni API hangs (SIGSTOP, shorter than Patroni's ttl): writes keep flowing", async () => {
    const leader = await tb.leader()
    const pid = await tb.patroniPid(leader)
    process.kill(pid, 'SIGSTOP')
    const failures: string[] = []
    let ok = 0
    try {
      const until = Date.now() + 4_000
      while (Date.now() < until) {
        try {
          const r = await whoAnswers(writePorts[ok % 3]!)
          if (r.recovery || r.port !== pgPortOf(leader)) failures.push(`reached ${r.port}`)
          else ok++
        } catch (e) {
          failures.push((e as Error).message)
        }
        await new Promise((r) => setTimeout(r, 100))
      }
    } finally {
      process.kill(pid, 'SIGCONT')
    }
    assert.deepEqual(failures, [])
    assert.ok(ok >= 10, `${ok} writes`)
  })

  it('switchover: writes move, sessions to the old leader are closed, no write ever reaches a replica', async () => {
    const from = await tb.leader()
    const to = tb.nodes.find((n) => n.name !== from)!.name
    // a session held through the write listener to the old leader
    const held = new pg.Client({
      host: '127.0.0.1',
      port: writePorts[1]!,
      user: 'postgres',
      password: TESTBED_PASSWORD,
      database: 'postgres',
    })
    let heldClosed = false
    held.on('error', () => undefined)
    held.on('end', () => {
      heldClosed = true
    })
    await held.connect()
    assert.equal((await held.query('SELECT inet_server_port() AS p')).rows[0].p, pgPortOf(from))

    let stop = false
    const wrongTurns: number[] = []
    const servedBy = new Set<number>()
    const loop = (async () => {
      for (let i = 0; i < 2_000 && !stop; i++) {
        try {
          const r = await whoAnswers(writePorts[i % 3]!)
          servedBy.add(r.port)
          if (r.recovery) wrongTurns.push(r.port)
        } catch {
          // refused or timed out while no primary: allowed; reaching a replica is not
        }
        await sleep(25)
      }
    })()
    await tb.switchover(from, to)
    await waitFor(
      'writes to reach the new leader',
      60_000,
      async () => {
        const r = await whoAnswers(writePorts[0]!).catch(() => null)
        return r !== null && r.port === pgPortOf(to) && !r.recovery ? true : undefined
      },
      200,
    )
    await waitFor('the session held to the old leader to be closed', 30_000, async () =>
      heldClosed ? true : undefined,
    )
    stop = true
    await loop
    await held.end().catch(() => undefined)
    assert.deepEqual(wrongTurns, [], 'a write connection reached a server in recovery')
    assert.ok(servedBy.has(pgPortOf(from)) || servedBy.has(pgPortOf(to)))
  })

  it('kill -9 of the leader (Patroni and PostgreSQL): writes resume on the promoted node', async () => {
    const old = await tb.leader()
    await tb.script(['kill', old, tbDir])
    const r = await waitFor(
      'a write through pgmesh after the promotion',
      90_000,
      async () => {
        const x = await whoAnswers(writePorts[2]!).catch(() => null)
        return x !== null && !x.recovery && x.port !== pgPortOf(old) ? x : undefined
      },
      250,
    )
    assert.equal(r.recovery, false)
  })

  it("kill -9 of only the leader's Patroni (its PostgreSQL stays a primary): writes go only to the new, higher-timeline primary", async () => {
    const old = await tb.leader()
    const oldTimeline = (await whoAnswers(writePorts[0]!)).port === pgPortOf(old) ? true : undefined
    assert.ok(oldTimeline, 'writes reach the leader before')
    process.kill(await tb.patroniPid(old), 'SIGKILL')
    // Patroni promotes another node once the leader key expires (ttl); the old PostgreSQL still
    // takes writes on its old timeline: two primaries, and the higher timeline must win
    const promoted = await waitFor(
      'another node promoted',
      60_000,
      async () => {
        const l = await tb.leader().catch(() => '')
        return l !== '' && l !== old ? l : undefined
      },
      500,
    )
    // each node moves once its own probe (or a peer's gossiped view) shows the higher timeline:
    // wait for all three, then no write may reach the old primary through any of them
    for (const port of writePorts) {
      await waitFor(
        `pgmesh to route writes to the promoted node through ${port}`,
        30_000,
        async () => {
          const r = await whoAnswers(port).catch(() => null)
          return r !== null && r.port === pgPortOf(promoted) ? true : undefined
        },
        200,
      )
    }
    for (let i = 0; i < 15; i++) {
      const r = await whoAnswers(writePorts[i % 3]!)
      assert.equal(r.port, pgPortOf(promoted), `write ${i} went to ${r.port}, not the new primary`)
      assert.equal(r.recovery, false)
    }
    const b = BackendsViewSchema.parse(await (await fetch(`${nodes[0]!.apiUrl}/v1/backends`)).json())
    assert.equal(b.agreed.primary, promoted)
  })
})
