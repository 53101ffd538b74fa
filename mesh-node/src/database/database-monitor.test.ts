import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:net'
import { after, describe, it } from 'node:test'
import { DatabaseConfigSchema } from '@pgmesh/protocol'
import { pino } from 'pino'
import {
  classify,
  confirm,
  DatabaseMonitor,
  type DbState,
  type ProbeResults,
  replicaLag,
} from './database-monitor.js'
import { probeTcp } from './probe-tcp.js'

const pgUp = (writable: boolean) => ({ reachable: true, writable, timeline: 3, lagBytes: 0, error: null })
const pgDown = { reachable: false, writable: false, timeline: null, lagBytes: null, error: 'refused' }
const patroni = (role: 'primary' | 'replica' | 'unknown', reachable = true) => ({
  reachable,
  role,
  state: reachable ? 'running' : null,
  timeline: 3,
  lagBytes: null,
  error: reachable ? null : 'timeout',
})
const tcp = (reachable: boolean) => ({ reachable, error: reachable ? null : 'ECONNREFUSED' })
const results = (r: Partial<ProbeResults>): ProbeResults => ({
  postgres: null,
  patroni: null,
  tcp: null,
  ...r,
})

describe('classify', () => {
  it('the database decides when it is probed: a hung Patroni takes nothing down', () => {
    assert.equal(classify(results({ postgres: pgUp(true), patroni: patroni('unknown', false) })), 'primary')
    assert.equal(classify(results({ postgres: pgUp(false), patroni: patroni('primary') })), 'replica')
    assert.equal(classify(results({ postgres: pgDown, patroni: patroni('primary') })), 'down')
  })

  it('a refused TCP connect is down whatever else answered', () => {
    assert.equal(classify(results({ postgres: pgUp(true), tcp: tcp(false) })), 'down')
    assert.equal(classify(results({ tcp: tcp(false), patroni: patroni('replica') })), 'down')
  })

  it('without the postgres probe nothing is primary: Patroni can say replica, its leader is only up', () => {
    assert.equal(classify(results({ patroni: patroni('replica') })), 'replica')
    assert.equal(classify(results({ patroni: patroni('primary') })), 'up')
    assert.equal(classify(results({ patroni: patroni('unknown', false) })), 'down')
    assert.equal(classify(results({ patroni: patroni('unknown', false), tcp: tcp(true) })), 'up')
    assert.equal(classify(results({ tcp: tcp(true) })), 'up')
  })
})

describe('replicaLag', () => {
  it('a replica whose WAL stream stopped lags by how far its replay is behind the primary', () => {
    // received everything it was sent and replayed it (0), but the primary wrote 8 MiB since
    assert.equal(replicaLag(0, 1_000, 1_000 + 8 * 2 ** 20), 8 * 2 ** 20)
  })

  it('the larger of received − replayed and primary − replayed; never negative', () => {
    assert.equal(replicaLag(5_000, 1_000, 2_000), 5_000)
    assert.equal(replicaLag(0, 3_000, 2_000), 0, 'the primary was checked a moment before the replica')
    assert.equal(replicaLag(null, 1_000, 4_000), 3_000)
  })

  it('without a primary position (none confirmed, its check failed) it is received − replayed', () => {
    assert.equal(replicaLag(7, 1_000, null), 7)
    assert.equal(replicaLag(7, null, 4_000), 7)
    assert.equal(replicaLag(null, undefined, undefined), null)
  })
})

describe('confirm', () => {
  it('leaving primary or going down takes fall results; coming back takes rise', () => {
    const rise = 2
    const fall = 3
    const cases: [DbState, DbState, number, boolean][] = [
      ['primary', 'replica', 2, false],
      ['primary', 'replica', 3, true],
      ['replica', 'down', 2, false],
      ['replica', 'down', 3, true],
      ['down', 'replica', 1, false],
      ['down', 'replica', 2, true],
      ['replica', 'primary', 2, true],
      ['up', 'up', 9, false],
    ]
    for (const [from, seen, streak, expected] of cases) {
      assert.equal(confirm(from, seen, streak, rise, fall), expected, `${from} -> ${seen} after ${streak}`)
    }
  })
})

describe('DatabaseMonitor with the tcp check only', () => {
  const servers: Server[] = []
  after(() => {
    for (const s of servers) s.close()
  })

  it('a listening port is up, a closed one goes down after `fall` refused connects', async () => {
    const server = createServer((s) => s.destroy())
    servers.push(server)
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const port = (server.address() as { port: number }).port
    const changes: string[] = []
    const db = DatabaseConfigSchema.parse({ name: 'pg1', address: `127.0.0.1:${port}` })
    const monitor = new DatabaseMonitor(
      [db],
      {
        use: ['tcp'],
        user: 'postgres',
        database: 'postgres',
        intervalMs: 20,
        timeoutMs: 500,
        rise: 1,
        fall: 2,
      },
      pino({ level: 'silent' }),
      (name, from, to) => changes.push(`${name}:${from}->${to}`),
    )
    await monitor.start()
    try {
      await waitUntil(() => monitor.status('pg1')?.state === 'up', 5_000)
      assert.equal(monitor.status('pg1')?.postgres, null, 'the postgres probe is not in use')
      assert.equal(monitor.status('pg1')?.tcp?.reachable, true)
      await new Promise<void>((r) => server.close(() => r()))
      await waitUntil(() => monitor.status('pg1')?.state === 'down', 5_000)
      assert.deepEqual(changes, ['pg1:down->up', 'pg1:up->down'])
      assert.match(monitor.status('pg1')?.tcp?.error ?? '', /ECONNREFUSED/)
    } finally {
      monitor.stop()
    }
  })

  it('probeTcp answers at once for an aborted signal and never throws', async () => {
    const ac = new AbortController()
    ac.abort()
    const aborted = await probeTcp('127.0.0.1', 1, 1_000, ac.signal)
    assert.equal(aborted.reachable, false)
  })
})

async function waitUntil(cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 10))
  }
}
