/**
 * How fast each proxy follows a new PostgreSQL primary: pgmesh (default check timings; its Node relay and its kernel path) and HAProxy
 * 2.6 with the Percona/Patroni config, side by side against the project's Patroni testbed.
 *
 * - switchover (Patroni's REST API): time from the new primary accepting writes (polled directly
 *   every 20 ms) to the first write through each proxy landing on it, and the connection attempts
 *   that failed in between (a loop opens a new connection and writes, again and again);
 * - kill -9 of the leader's Patroni only (its PostgreSQL stays up and writable, a second primary
 *   once Patroni promotes another node): the same, plus the time from the kill until a session held
 *   through each proxy to the old primary is closed, and the writes each proxy still sent to the old
 *   primary after the new one accepted writes.
 *
 * pgmesh is measured twice, on two write listeners of the same node: the Node relay and the kernel
 * path (`dataPath: kernel`: nftables DNAT to the agreed primary, sessions cut by conntrack).
 *
 * Usage (root): node --conditions=source --import tsx test/bench/primary-failover.bench.ts [--runs 3]
 */
import { randomBytes } from 'node:crypto'
import { cpus, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { BackendsViewSchema } from '@pgmesh/protocol'
import pg from 'pg'
import { startHaproxyPercona } from '../helpers/haproxy-percona.js'
import { startPgmeshInFront } from '../helpers/pgmesh-in-front.js'
import { freePort, Sandbox, waitFor } from '../helpers/processes.js'
import { TESTBED_PASSWORD, Testbed } from '../helpers/testbed.js'

const { values } = parseArgs({ options: { runs: { type: 'string' } } })
const runs = Number(values.runs ?? '3')
const PROXIES = ['pgmesh', 'kernel', 'haproxy'] as const
type Proxy = (typeof PROXIES)[number]

const connect = (port: number, timeoutMs: number) => {
  const c = new pg.Client({
    host: '127.0.0.1',
    port,
    user: 'postgres',
    password: TESTBED_PASSWORD,
    database: 'postgres',
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
  })
  c.on('error', () => undefined)
  return c
}

/** Opens a new connection and writes (txid_current() fails in recovery), in a loop. */
class WriteLoop {
  readonly writes: { at: number; port: number }[] = []
  failures = 0
  #running = true
  readonly #done: Promise<void>

  constructor(port: number) {
    this.#done = this.#loop(port)
  }

  async #loop(port: number): Promise<void> {
    while (this.#running) {
      const c = connect(port, 15_000)
      try {
        await c.connect()
        const r = await c.query<{ port: number }>('SELECT txid_current(), inet_server_port() AS port')
        this.writes.push({ at: performance.now(), port: r.rows[0]!.port })
      } catch {
        this.failures++
        await sleep(20)
      } finally {
        await c.end().catch(() => undefined)
      }
    }
  }

  firstOn(port: number, after: number): number | null {
    return this.writes.find((w) => w.port === port && w.at >= after)?.at ?? null
  }

  async stop(): Promise<void> {
    this.#running = false
    await this.#done
  }
}

/** Polls every database directly; the first time `accept` passes for a port, it is recorded. */
async function firstWritable(
  ports: readonly number[],
  deadlineMs: number,
): Promise<{ port: number; at: number }> {
  const clients = new Map<number, pg.Client | null>(ports.map((p) => [p, null]))
  const until = performance.now() + deadlineMs
  try {
    while (performance.now() < until) {
      for (const p of ports) {
        try {
          let c = clients.get(p) ?? null
          if (c === null) {
            c = connect(p, 1_000)
            clients.set(p, c)
            await c.connect()
          }
          const r = await c.query<{ recovery: boolean }>('SELECT pg_is_in_recovery() AS recovery')
          if (r.rows[0]?.recovery === false) return { port: p, at: performance.now() }
        } catch {
          void clients
            .get(p)
            ?.end()
            .catch(() => undefined)
          clients.set(p, null)
        }
      }
      await sleep(20)
    }
    throw new Error('no database became writable')
  } finally {
    for (const c of clients.values()) void c?.end().catch(() => undefined)
  }
}

/**
 * A session held through a proxy; `closedAt` is when the proxy (or the server) closed it. With
 * `probeEveryMs` the session runs `SELECT 1` that often and counts its first failure as the cut:
 * the kernel path cuts a flow by deleting its conntrack entry and resetting its next packet, so
 * an idle client learns of the cut when it next sends, as any client of a dead route does.
 */
/** every session a run opened, ended when the run ends (a live socket would keep the bench running) */
const sessions = new Set<{ end(): Promise<void> }>()
const probes = new Set<NodeJS.Timeout>()

async function endSessions(): Promise<void> {
  for (const t of probes) clearInterval(t)
  probes.clear()
  await Promise.all([...sessions].map((c) => c.end().catch(() => undefined)))
  sessions.clear()
}

async function holdSession(
  port: number,
  probeEveryMs?: number,
): Promise<{ port: number; closedAt: () => number | null }> {
  const c = connect(port, 5_000)
  sessions.add(c)
  let closedAt: number | null = null
  const closed = () => {
    closedAt ??= performance.now()
  }
  c.on('end', closed)
  c.on('error', closed)
  await c.connect()
  const r = await c.query<{ port: number }>('SELECT inet_server_port() AS port')
  if (probeEveryMs !== undefined) {
    let busy = false
    const probe = setInterval(() => {
      if (closedAt !== null) {
        clearInterval(probe)
        return
      }
      if (busy) return
      busy = true
      c.query('SELECT 1')
        .catch(closed)
        .finally(() => {
          busy = false
        })
    }, probeEveryMs)
    probes.add(probe)
  }
  return { port: r.rows[0]!.port, closedAt: () => closedAt }
}

interface RunResult {
  switchover: Record<Proxy, { firstWriteMs: number | null; failed: number }>
  patroniKill: Record<
    Proxy,
    { firstWriteMs: number | null; cutAfterKillMs: number | null; oldPrimaryWrites: number; failed: number }
  >
  promotedAfterKillMs: number
}

async function oneRun(): Promise<RunResult> {
  const sb = new Sandbox()
  await sb.init('primary-failover')
  const tb = await Testbed.up(join(tmpdir(), `pgmesh-tb-${randomBytes(4).toString('hex')}`))
  try {
    const ports: Record<Proxy, number> = {
      pgmesh: await freePort(),
      kernel: await freePort(),
      haproxy: await freePort(),
    }
    // one node, two write listeners: the Node relay and the kernel path (`dataPath: kernel`)
    const node = await startPgmeshInFront(sb, tb, {
      id: 'bench',
      port: ports.pgmesh,
      kernelPort: ports.kernel,
    })
    await startHaproxyPercona(sb, tb, ports.haproxy)
    const routesTo = async (proxy: Proxy, name: string) => {
      const s = await holdSession(ports[proxy]).catch(() => null)
      return s?.port === tb.node(name).pgPort
    }
    const settle = async () => {
      const leader = await waitFor('a leader', 60_000, () => tb.leader().catch(() => undefined), 500)
      for (const p of PROXIES) {
        await waitFor(
          `${p} to route to ${leader}`,
          60_000,
          async () => ((await routesTo(p, leader)) ? true : undefined),
          500,
        )
      }
      return leader
    }
    const pgPorts = tb.nodes.map((n) => n.pgPort)

    // planned switchover
    const from = await settle()
    const to = tb.nodes.find((n) => n.name !== from)!
    let loops = Object.fromEntries(PROXIES.map((p) => [p, new WriteLoop(ports[p])])) as Record<
      Proxy,
      WriteLoop
    >
    await sleep(500)
    const failedBefore = Object.fromEntries(PROXIES.map((p) => [p, loops[p].failures])) as Record<
      Proxy,
      number
    >
    const writable = firstWritable([to.pgPort], 60_000)
    await tb.switchover(from, to.name)
    const w = await writable
    await waitFor('every proxy to write to the new primary', 30_000, async () =>
      PROXIES.every((p) => loops[p].firstOn(w.port, w.at) !== null) ? true : undefined,
    )
    await Promise.all(PROXIES.map((p) => loops[p].stop()))
    const switchover = Object.fromEntries(
      PROXIES.map((p) => [
        p,
        { firstWriteMs: loops[p].firstOn(w.port, w.at)! - w.at, failed: loops[p].failures - failedBefore[p] },
      ]),
    ) as RunResult['switchover']

    // kill -9 of the leader's Patroni: its PostgreSQL keeps taking writes until the proxies move
    const old = await settle()
    await waitFor('the old leader to stream as a replica again', 60_000, async () => {
      const b = BackendsViewSchema.parse(await (await fetch(`${node.apiUrl}/v1/backends`)).json())
      return b.agreed.replicas.length === 2 ? true : undefined
    })
    const held = Object.fromEntries(
      await Promise.all(PROXIES.map(async (p) => [p, await holdSession(ports[p], 50)] as const)),
    ) as Record<Proxy, Awaited<ReturnType<typeof holdSession>>>
    loops = Object.fromEntries(PROXIES.map((p) => [p, new WriteLoop(ports[p])])) as Record<Proxy, WriteLoop>
    await sleep(500)
    const failedBeforeKill = Object.fromEntries(PROXIES.map((p) => [p, loops[p].failures])) as Record<
      Proxy,
      number
    >
    const killedAt = performance.now()
    process.kill(await tb.patroniPid(old), 'SIGKILL')
    const promoted = await firstWritable(
      pgPorts.filter((p) => p !== tb.node(old).pgPort),
      90_000,
    )
    await waitFor(
      'every proxy to write to the promoted node and close the held sessions',
      60_000,
      async () =>
        PROXIES.every(
          (p) => loops[p].firstOn(promoted.port, promoted.at) !== null && held[p].closedAt() !== null,
        )
          ? true
          : undefined,
    )
    await Promise.all(PROXIES.map((p) => loops[p].stop()))
    const oldPort = tb.node(old).pgPort
    const patroniKill = Object.fromEntries(
      PROXIES.map((p) => {
        const cut = held[p].closedAt()
        return [
          p,
          {
            firstWriteMs: loops[p].firstOn(promoted.port, promoted.at)! - promoted.at,
            cutAfterKillMs: cut === null ? null : cut - killedAt,
            oldPrimaryWrites: loops[p].writes.filter((x) => x.port === oldPort && x.at >= promoted.at).length,
            failed: loops[p].failures - failedBeforeKill[p],
          },
        ]
      }),
    ) as RunResult['patroniKill']
    return { switchover, patroniKill, promotedAfterKillMs: promoted.at - killedAt }
  } finally {
    await endSessions()
    await sb.cleanup()
    await tb.down()
  }
}

const results: RunResult[] = []
for (let r = 0; r < runs; r++) {
  const res = await oneRun()
  results.push(res)
  process.stdout.write(`run ${r + 1}: ${JSON.stringify(res)}\n`)
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const fmt = (xs: (number | null)[]) => {
  const v = xs.filter((x): x is number => x !== null)
  return v.length === 0
    ? '—'
    : `${med(v).toFixed(0)} (${Math.min(...v).toFixed(0)}–${Math.max(...v).toFixed(0)})`
}
const lines = [
  '| scenario | measure | pgmesh (Node relay) | pgmesh (kernel path) | HAProxy (Percona) |',
  '|---|---|---|---|---|',
  `| switchover | new primary writable → first write through the proxy, ms | ${PROXIES.map((p) => fmt(results.map((r) => r.switchover[p].firstWriteMs))).join(' | ')} |`,
  `| switchover | failed connection attempts (sum over runs) | ${PROXIES.map((p) => results.reduce((s, r) => s + r.switchover[p].failed, 0)).join(' | ')} |`,
  `| leader's Patroni killed | new primary writable → first write through the proxy, ms | ${PROXIES.map((p) => fmt(results.map((r) => r.patroniKill[p].firstWriteMs))).join(' | ')} |`,
  `| leader's Patroni killed | kill → held session to the old primary cut (SELECT 1 every 50 ms), ms | ${PROXIES.map((p) => fmt(results.map((r) => r.patroniKill[p].cutAfterKillMs))).join(' | ')} |`,
  `| leader's Patroni killed | writes on the old primary after the new one was writable (sum) | ${PROXIES.map((p) => results.reduce((s, r) => s + r.patroniKill[p].oldPrimaryWrites, 0)).join(' | ')} |`,
  `| leader's Patroni killed | failed connection attempts (sum) | ${PROXIES.map((p) => results.reduce((s, r) => s + r.patroniKill[p].failed, 0)).join(' | ')} |`,
]
process.stdout.write(
  `\n${new Date().toISOString()} on ${cpus().length}× ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; ${runs} runs, median (min–max); Patroni promoted a node ${fmt(results.map((r) => r.promotedAfterKillMs))} ms after the kill\n${lines.join('\n')}\n`,
)
