/**
 * Proxy CPU per transaction: `pgbench -S -t N` (a fixed number of transactions) through pgmesh and
 * through HAProxy 2.6 (Percona/Patroni config) against the project's Patroni testbed, reading each
 * proxy process's CPU time (utime + stime in /proc/PID/stat) before and after. CPU per transaction
 * stays comparable on a busy 2-core machine where TPS does not. pgmesh's idle CPU (checks, mesh
 * heartbeats), measured before the runs, is subtracted for the run's wall time.
 *
 * `--bundle label=path` (repeatable) runs more pgmesh builds side by side (e.g. a copy of the
 * previous bundle), each as its own node; the default is the current mesh-node/dist/pgmesh.mjs.
 * Usage (root): node --conditions=source --import tsx test/bench/proxy-cpu.bench.ts [--runs 3] [--transactions 80000 | --seconds 10] [--clients 16,64] [--bundle before=/tmp/before.mjs]
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { cpus, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs, promisify } from 'node:util'
import { startHaproxyPercona } from '../helpers/haproxy-percona.js'
import { startPgmeshInFront, waitUntilPsqlAnswers } from '../helpers/pgmesh-in-front.js'
import { CLI, freePort, Sandbox } from '../helpers/processes.js'
import { TESTBED_PASSWORD, Testbed } from '../helpers/testbed.js'

const run = promisify(execFile)
const { values } = parseArgs({
  options: {
    runs: { type: 'string' },
    transactions: { type: 'string' },
    seconds: { type: 'string' },
    clients: { type: 'string' },
    bundle: { type: 'string', multiple: true },
  },
})
const runs = Number(values.runs ?? '3')
const totalTx = Number(values.transactions ?? '80000')
/** a fixed duration instead of a fixed transaction count (TPS like pgbench.bench.ts, CPU still per transaction) */
const seconds = values.seconds === undefined ? null : Number(values.seconds)
const clientCounts = (values.clients ?? '16,64').split(',').map(Number)
const bundles = (values.bundle ?? [`pgmesh=${CLI}`]).map((b) => {
  const i = b.indexOf('=')
  return i < 0 ? { label: 'pgmesh', path: b } : { label: b.slice(0, i), path: b.slice(i + 1) }
})
const TICK_US = 1e6 / Number((await run('getconf', ['CLK_TCK'])).stdout.trim())

/** utime + stime of every thread of the process, in µs. */
async function cpuUs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // fields 14 and 15 of stat(5); f[0] is field 3
  return (Number(f[11]) + Number(f[12])) * TICK_US
}

const sb = new Sandbox()
await sb.init('proxycpu')
const tb = await Testbed.up(join(tmpdir(), `pgmesh-tb-${randomBytes(4).toString('hex')}`))
const env = { ...process.env, PGPASSWORD: TESTBED_PASSWORD }

try {
  const leader = await tb.leader()
  const paths: { name: string; port: number; pid: number | null; idleUsPerS: number }[] = [
    { name: 'direct', port: tb.node(leader).pgPort, pid: null, idleUsPerS: 0 },
  ]
  for (const b of bundles) {
    const port = await freePort()
    const node = await startPgmeshInFront(sb, tb, { id: b.label, port, cli: b.path })
    paths.push({ name: b.label, port, pid: node.proc.pid ?? null, idleUsPerS: 0 })
  }
  const haproxyPort = await freePort()
  const haproxy = await startHaproxyPercona(sb, tb, haproxyPort)
  paths.push({ name: 'haproxy', port: haproxyPort, pid: haproxy.pid ?? null, idleUsPerS: 0 })

  const base = ['-h', '127.0.0.1', '-U', 'postgres']
  await run('pgbench', ['-i', '-s', '10', '-q', ...base, '-p', String(tb.node(leader).pgPort), 'postgres'], {
    env,
    timeout: 120_000,
  })
  for (const p of paths) await waitUntilPsqlAnswers(`${p.name} to reach the primary`, p.port)

  // idle CPU of each proxy, all measured over the same 5 s
  const idleMs = 5_000
  const idleBefore = await Promise.all(paths.map((p) => (p.pid === null ? 0 : cpuUs(p.pid))))
  await sleep(idleMs)
  for (const [i, p] of paths.entries()) {
    if (p.pid !== null) p.idleUsPerS = ((await cpuUs(p.pid)) - idleBefore[i]!) / (idleMs / 1000)
  }
  process.stdout.write(
    `idle CPU: ${paths.map((p) => `${p.name} ${(p.idleUsPerS / 1e4).toFixed(1)} %`).join(', ')}\n`,
  )

  const results: Record<string, { cpu: number[]; tps: number[] }> = {}
  for (let r = 0; r < runs; r++) {
    for (const c of clientCounts) {
      const perClient = Math.ceil(totalTx / c)
      for (const p of paths) {
        const cpu0 = p.pid === null ? 0 : await cpuUs(p.pid)
        const t0 = performance.now()
        const { stdout } = await run(
          'pgbench',
          [
            '-S',
            '-c',
            String(c),
            '-j',
            '2',
            ...(seconds === null ? ['-t', String(perClient)] : ['-T', String(seconds)]),
            ...base,
            '-p',
            String(p.port),
            'postgres',
          ],
          { env, timeout: 600_000 },
        )
        const wallS = (performance.now() - t0) / 1000
        const cpu1 = p.pid === null ? 0 : await cpuUs(p.pid)
        const done = Number(/number of transactions actually processed: (\d+)/.exec(stdout)?.[1])
        const tps = Number(/tps = ([\d.]+)/.exec(stdout)?.[1])
        const perTx = p.pid === null ? 0 : (cpu1 - cpu0 - p.idleUsPerS * wallS) / done
        const key = `${p.name}@${c}`
        const res = results[key] ?? { cpu: [], tps: [] }
        results[key] = res
        res.cpu.push(perTx)
        res.tps.push(tps)
        process.stdout.write(
          `${key} run ${r + 1}: ${done} tx in ${wallS.toFixed(1)} s, ${tps.toFixed(0)} tps, proxy CPU ${perTx.toFixed(1)} µs/tx\n`,
        )
      }
    }
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  const range = (xs: number[], d: number) =>
    `${med(xs).toFixed(d)} (${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)})`
  const lines = [
    '| clients | path | proxy CPU µs/tx median (min–max) | CPU × HAProxy | TPS median (min–max) | TPS × HAProxy |',
    '|---|---|---|---|---|---|',
  ]
  for (const c of clientCounts) {
    const h = results[`haproxy@${c}`]!
    for (const p of paths) {
      const r = results[`${p.name}@${c}`]!
      const cpu = p.pid === null ? '—' : range(r.cpu, 1)
      const cpuRatio = p.pid === null ? '—' : (med(r.cpu) / med(h.cpu)).toFixed(2)
      lines.push(
        `| ${c} | ${p.name} | ${cpu} | ${cpuRatio} | ${range(r.tps, 0)} | ${(med(r.tps) / med(h.tps)).toFixed(2)} |`,
      )
    }
  }
  process.stdout.write(
    `\n${new Date().toISOString()} on ${cpus().length}× ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; pgbench -S ${seconds === null ? `-t (${totalTx} transactions per path)` : `-T ${seconds}`}, ${runs} runs, scale 10; idle CPU subtracted\n${lines.join('\n')}\n`,
  )
} finally {
  await sb.cleanup()
  await tb.down()
}
