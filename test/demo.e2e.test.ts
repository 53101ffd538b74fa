import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { type ClusterStatus, ClusterStatusSchema } from '@pgmesh/protocol'
import pg from 'pg'
import { CLI, exited, freePort, isRunning, ROOT, Sandbox, waitFor } from './helpers/processes.js'

/** The README's first command, as a new user meets it: 3 nodes, curl, add a 4th peer. */
describe('deploy/demo.sh', { timeout: 600_000 }, () => {
  const sb = new Sandbox()
  before(() => sb.init('demo'))
  after(() => sb.cleanup())

  it('starts 3 nodes, accepts a 4th peer through node 3, and stops everything', async () => {
    // below Linux's ephemeral range (32768+), where the demo's ~130 ports cannot meet a client's port
    const base = 21_000 + ((await freePort()) % 10_000)
    const demoDir = join(sb.dir, 'demo')
    let output = ''
    const demo = spawn(join(ROOT, 'deploy', 'demo.sh'), [], {
      cwd: ROOT,
      env: {
        ...process.env,
        PGMESH_DEMO_PORT: String(base),
        PGMESH_DEMO_DIR: demoDir,
        // long enough for a loaded machine; the test stops the demo itself (SIGTERM) when done
        PGMESH_DEMO_SECONDS: '600',
        // a Patroni bootstrap on a loaded 2-core machine can take longer than the testbed's 120 s
        TB_TIMEOUT: '300',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    sb.procs.add(demo)
    demo.stdout.on('data', (d: Buffer) => {
      output += d.toString()
    })
    demo.stderr.on('data', (d: Buffer) => {
      output += d.toString()
    })
    await waitFor(
      'the demo to report the mesh up',
      400_000,
      async () => (output.includes('The mesh is up') ? true : undefined),
      100,
    )
    assert.match(output, /3 alive, 0 suspect/)
    const status = async (port: number): Promise<ClusterStatus> =>
      ClusterStatusSchema.parse(await (await fetch(`http://127.0.0.1:${port}/v1/status`)).json())

    const n4 = sb.spawnNode(
      [
        CLI,
        'start',
        '--id',
        'n4',
        '--cluster',
        'demo',
        '--gossip',
        `127.0.0.1:${base + 30}`,
        '--api',
        `127.0.0.1:${base + 31}`,
        '--join',
        `127.0.0.1:${base + 20}`,
        '--secret-file',
        join(demoDir, 'cluster.secret'),
        '--data-dir',
        join(demoDir, 'n4'),
      ],
      'n4.log',
    )
    await waitFor('n4 listed by node 1', 20_000, async () => {
      const s = await status(base + 1)
      return s.counts.alive === 4 ? true : undefined
    })
    // n1 founded the cluster alone (no --join); the MASTER added n2, n3 and n4 as voters
    await waitFor('n1 as MASTER with every node a voter', 20_000, async () => {
      const s = await status(base + 1)
      return s.election.master === 'n1' &&
        s.election.voters?.voters.length === 4 &&
        s.election.voters.prev === null
        ? true
        : undefined
    })
    if (process.getuid?.() === 0) {
      // the demo's Patroni cluster, through node 2's write listener: the primary answers
      const c = new pg.Client({
        host: '127.0.0.1',
        port: base + 12,
        user: 'postgres',
        password: 'postgres-pass',
        database: 'postgres',
        connectionTimeoutMillis: 10_000,
      })
      await c.connect()
      const r = await c.query<{ recovery: boolean }>('SELECT pg_is_in_recovery() AS recovery')
      await c.end()
      assert.equal(r.rows[0]?.recovery, false)
      assert.match(output, /psql -h 127\.0\.0\.1 -p \d+ -U postgres/)
    }
    const master = await fetch(`http://127.0.0.1:${base + 1}/master`)
    assert.equal(master.status, 200)
    assert.equal((await fetch(`http://127.0.0.1:${base + 11}/master`)).status, 503)
    n4.kill('SIGTERM')
    demo.kill('SIGTERM')
    assert.equal(await exited(demo, 60_000), 0)
    const pids = await Promise.all(
      [1, 2, 3].map((i) => readFile(join(demoDir, `n${i}.pid`), 'utf8').catch(() => null)),
    )
    assert.deepEqual(pids, [null, null, null], 'the demo removes its pid files when it stops')
    await assert.rejects(
      fetch(`http://127.0.0.1:${base + 1}/health`),
      'node 1 still answers after the demo stopped',
    )
    assert.ok(!isRunning(demo))
  })
})
