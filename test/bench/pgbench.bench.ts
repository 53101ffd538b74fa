/**
 * pgbench through pgmesh, through HAProxy 2.6 (the Percona reference config for Patroni: httpchk on
 * Patroni's /primary) and directly, against the project's Patroni testbed, in one run:
 * `pgbench -S` (select-only) TPS and average latency at 16 and 64 clients, on pgmesh's Node relay
 * (`pgmesh`) and its kernel fast path (`pgmesh-kernel`, nftables DNAT); `--connect` adds pgbench's
 * -C (a new connection per transaction).
 * The proxy's CPU per transaction (user and system, from /proc over each round) is printed too.
 * `--builds a=PATH,b=PATH` adds one Node-relay node per `pgmesh.mjs` build (`pgmesh@a`, ...), so
 * two versions of the relay are measured in the same rounds.
 * Usage (root): node --conditions=source --import tsx test/bench/pgbench.bench.ts [--runs 3] [--seconds 10] [--clients 16,64] [--connect] [--builds a=PATH,b=PATH]
 */
import { type ChildProcess, execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { cpus, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { parseArgs, promisify } from 'node:util'
import { ClusterStatusSchema } from '@pgmesh/protocol'
import { fastPathTable } from '../../mesh-node/src/fastpath/nft-rules.js'
import { startHaproxyPercona } from '../helpers/haproxy-percona.js'
import { startPgmeshInFront, waitUntilPsqlAnswers } from '../helpers/pgmesh-in-front.js'
import { freePort, Sandbox, waitFor } from '../helpers/processes.js'
import { TESTBED_PASSWORD, Testbed } from '../helpers/testbed.js'

const run = promisify(execFile)
const { values } = parseArgs({
  options: {
    runs: { type: 'string' },
    seconds: { type: 'string' },
    clients: { type: 'string' },
    connect: { type: 'boolean' },
    builds: { type: 'string' },
  },
})
const runs = Number(values.runs ?? '3')
const seconds = Number(values.seconds ?? '10')
const clientCounts = (values.clients ?? '16,64').split(',').map(Number)
const builds = (values.builds ?? '')
  .split(',')
  .filter((b) => b !== '')
  .map((b) => {
    const [name, cli] = b.split('=')
    if (name === undefined || cli === undefined) throw new Error(`--builds: ${b} is not NAME=PATH`)
    return { name, cli }
  })

/** user and system CPU of a process so far, in µs */
async function cpuOf(pid: number | undefined): Promise<{ user: number; sys: number } | null> {
  if (pid === undefined) return null
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null)
  if (stat === null) return null
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const tick = 1e6 / 100 // USER_HZ
  return { user: Number(f[11]) * tick, sys: Number(f[12]) * tick }
}

const sb = new Sandbox()
await sb.init('pgbench')
const tb = await Testbed.up(join(tmpdir(), `pgmesh-tb-${randomBytes(4).toString('hex')}`))
const env = { ...process.env, PGPASSWORD: TESTBED_PASSWORD }

try {
  const leader = await tb.leader()
  const pgmeshPort = await freePort()
  const kernelPort = await freePort()
  const haproxyPort = await freePort()
  const node = await startPgmeshInFront(sb, tb, { id: 'bench', port: pgmeshPort, kernelPort })
  await waitFor('the kernel fast path to be installed', 30_000, async () => {
    const s = ClusterStatusSchema.parse(await (await fetch(`${node.apiUrl}/v1/status`)).json())
    return s.fastPath?.listeners.find((l) => l.name === 'fast')?.path === 'kernel' ? true : undefined
  })

  const haproxy = await startHaproxyPercona(sb, tb, haproxyPort)
  const proxies: Record<string, ChildProcess> = { haproxy, pgmesh: node.proc, 'pgmesh-kernel': node.proc }
  const buildPorts: Record<string, number> = {}
  for (const b of builds) {
    const port = await freePort()
    const n = await startPgmeshInFront(sb, tb, { id: `bench-${b.name}`, port, cli: b.cli })
    proxies[`pgmesh@${b.name}`] = n.proc
    buildPorts[`pgmesh@${b.name}`] = port
  }

  const base = ['-h', '127.0.0.1', '-U', 'postgres']
  await run('pgbench', ['-i', '-s', '10', '-q', ...base, '-p', String(tb.node(leader).pgPort), 'postgres'], {
    env,
    timeout: 120_000,
  })
  await waitUntilPsqlAnswers('haproxy to route to the primary', haproxyPort)
  await waitUntilPsqlAnswers('the kernel path to route to the primary', kernelPort)

  const paths: Record<string, number> = {
    direct: tb.node(leader).pgPort,
    haproxy: haproxyPort,
    pgmesh: pgmeshPort,
    'pgmesh-kernel': kernelPort,
    ...buildPorts,
  }
  for (const name of Object.keys(buildPorts))
    await waitUntilPsqlAnswers(`${name} to route to the primary`, paths[name]!)
  const results: Record<string, { tps: number[]; lat: number[]; user: number[]; sys: number[] }> = {}
  for (let r = 0; r < runs; r++) {
    for (const c of clientCounts) {
      for (const [name, port] of Object.entries(paths)) {
        const before = await cpuOf(proxies[name]?.pid)
        const { stdout } = await run(
          'pgbench',
          [
            '-S',
            ...(values.connect === true ? ['-C'] : []),
            '-c',
            String(c),
            '-j',
            '2',
            '-T',
            String(seconds),
            ...base,
            '-p',
            String(port),
            'postgres',
          ],
          { env, timeout: (seconds + 60) * 1000 },
        )
        const tps = Number(/tps = ([\d.]+)/.exec(stdout)?.[1])
        const lat = Number(/latency average = ([\d.]+) ms/.exec(stdout)?.[1])
        const after = await cpuOf(proxies[name]?.pid)
        const tx = Number(/number of transactions actually processed: (\d+)/.exec(stdout)?.[1])
        const key = `${name}@${c}`
        const res = results[key] ?? { tps: [], lat: [], user: [], sys: [] }
        results[key] = res
        res.tps.push(tps)
        res.lat.push(lat)
        // the kernel path's node is the Node path's too: its CPU there is the checks' and the mesh's
        if (before !== null && after !== null && tx > 0) {
          res.user.push((after.user - before.user) / tx)
          res.sys.push((after.sys - before.sys) / tx)
        }
        process.stdout.write(`${key} run ${r + 1}: ${tps.toFixed(0)} tps, ${lat.toFixed(2)} ms\n`)
      }
    }
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  const lines = [
    '| clients | path | TPS median (min–max) | × HAProxy | × direct | latency avg ms (median) | proxy CPU µs/tx user + sys (median) |',
    '|---|---|---|---|---|---|---|',
  ]
  for (const c of clientCounts) {
    for (const name of Object.keys(paths)) {
      const r = results[`${name}@${c}`]!
      const h = results[`haproxy@${c}`]!
      const d = results[`direct@${c}`]!
      lines.push(
        `| ${c} | ${name} | ${med(r.tps).toFixed(0)} (${Math.min(...r.tps).toFixed(0)}–${Math.max(...r.tps).toFixed(0)}) | ${(med(r.tps) / med(h.tps)).toFixed(2)} | ${(med(r.tps) / med(d.tps)).toFixed(2)} | ${med(r.lat).toFixed(2)} | ${r.user.length === 0 ? '–' : `${med(r.user).toFixed(1)} + ${med(r.sys).toFixed(1)}`} |`,
      )
    }
  }
  process.stdout.write(
    `\n${new Date().toISOString()} on ${cpus().length}× ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; pgbench -S${values.connect === true ? ' -C' : ''}, ${runs} runs of ${seconds} s, scale 10\n${lines.join('\n')}\n`,
  )
} finally {
  await sb.cleanup()
  await tb.down()
  // the node was killed by the cleanup: its kernel fast-path table is the bench's to remove
  await run('nft', ['delete', 'table', 'ip', fastPathTable('bench')]).catch(() => undefined)
}
