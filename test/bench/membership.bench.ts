/**
 * Membership benchmark: N pgmesh processes on loopback (N = 3, 10, 25 by default).
 *   converge  time from spawning all N (all at once, node 1 as the only seed) until every node
 *             lists all N alive
 *   join      a node joins through the last node (not the seed): time from its spawn, and from its
 *             API answering, until every node lists it alive
 *   rss       resident memory of each idle node after the mesh settled
 *   cpu       CPU each idle node uses over 10 s (--idle-ms) once the mesh settled for 2 s
 *             (--settle-ms; heartbeats only)
 * Usage: node --conditions=source --import tsx test/bench/membership.bench.ts [--sizes 3,10,25] [--runs 3]
 *          [--heartbeat-ms N] [--settle-ms 2000] [--idle-ms 10000] [--max-voters N]
 *          [--mesh-degree N] [--election-ms N] [--builds NAME=CLI,NAME=CLI]
 * --builds compares builds of the CLI (a copy of mesh-node/dist/pgmesh.mjs from another commit,
 * say) in one run: their runs alternate, and each gets its own row.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { generateSecret } from '../../mesh-node/src/secret.js'
import { fetchStatus, startMeshNode, type TestNode } from '../helpers/mesh-cluster.js'
import { CLI, Sandbox, waitFor } from '../helpers/processes.js'

const { values } = parseArgs({
  options: {
    sizes: { type: 'string' },
    runs: { type: 'string' },
    'heartbeat-ms': { type: 'string' },
    'settle-ms': { type: 'string' },
    'idle-ms': { type: 'string' },
    'max-voters': { type: 'string' },
    'mesh-degree': { type: 'string' },
    'election-ms': { type: 'string' },
    builds: { type: 'string' },
  },
})
const sizes = (values.sizes ?? '3,10,25').split(',').map(Number)
const runs = Number(values.runs ?? '3')
/** membership heartbeat to run with (suspect after 3, dead after 8 intervals); default: the config defaults */
const heartbeatMs = values['heartbeat-ms'] === undefined ? undefined : Number(values['heartbeat-ms'])
/** `election.maxVoters` to run with; default: the config default */
const maxVoters = values['max-voters'] === undefined ? undefined : Number(values['max-voters'])
/** `gossip.meshDegree` to run with; default: the config default */
const meshDegree = values['mesh-degree'] === undefined ? undefined : Number(values['mesh-degree'])
/**
 * the election's renewal interval to run with, the other election timings scaled to it as the
 * defaults are to 50 ms (lease and status 5×, election timeout 6–8×); default: the config defaults
 */
const electionMs = values['election-ms'] === undefined ? undefined : Number(values['election-ms'])
/** the CLI builds to compare, by name; default: this tree's build */
const builds: { name: string; cli: string }[] =
  values.builds === undefined
    ? [{ name: 'this tree', cli: CLI }]
    : values.builds.split(',').map((b) => {
        const at = b.indexOf('=')
        if (at <= 0) throw new Error(`--builds: expected NAME=CLI, got '${b}'`)
        return { name: b.slice(0, at), cli: b.slice(at + 1) }
      })

/** user + system CPU seconds a process has used so far */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m === null ? Number.NaN : Number(m[1]) / 1024
}

async function allList(nodes: readonly TestNode[], ids: readonly string[]): Promise<true | undefined> {
  const views = await Promise.all(nodes.map((n) => fetchStatus(n).catch(() => null)))
  for (const v of views) {
    if (v === null) return undefined
    const alive = new Set(v.members.filter((m) => m.state === 'alive').map((m) => m.id))
    if (!ids.every((id) => alive.has(id))) return undefined
  }
  return true
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return { min: s[0]!, median: s[Math.floor(s.length / 2)]!, max: s[s.length - 1]! }
}
const fmt = (x: { min: number; median: number; max: number }, digits = 2) =>
  `${x.median.toFixed(digits)} (${x.min.toFixed(digits)}–${x.max.toFixed(digits)})`

interface RunResult {
  convergeS: number
  joinFromSpawnS: number
  joinFromApiS: number
  rss: number[]
  idleCpuPct: number[]
}

/** a run that has not converged by then is reported as such, not waited for */
const CONVERGE_LIMIT_MS = 60_000
/** idle CPU is measured over this window once the mesh has settled */
/** from convergence to the RSS reading and the start of the idle window (start-up JIT and first gossip rounds still run in the first seconds) */
const SETTLE_MS = Number(values['settle-ms'] ?? '2000')
const IDLE_WINDOW_MS = Number(values['idle-ms'] ?? '10000')

async function runOnce(n: number, cli: string): Promise<RunResult | null> {
  const sb = new Sandbox()
  await sb.init(`bench-${n}`)
  try {
    const secretFile = join(sb.dir, 'cluster.secret')
    writeFileSync(secretFile, generateSecret(), { mode: 0o600 })
    let configFile: string | undefined
    if (
      heartbeatMs !== undefined ||
      maxVoters !== undefined ||
      meshDegree !== undefined ||
      electionMs !== undefined
    ) {
      configFile = join(sb.dir, 'timings.yaml')
      const lines = ['cluster:']
      if (heartbeatMs !== undefined)
        lines.push(
          '  membership:',
          `    heartbeatIntervalMs: ${heartbeatMs}`,
          `    suspectTimeoutMs: ${3 * heartbeatMs}`,
          `    deadTimeoutMs: ${8 * heartbeatMs}`,
        )
      if (maxVoters !== undefined || electionMs !== undefined) lines.push('  election:')
      if (maxVoters !== undefined) lines.push(`    maxVoters: ${maxVoters}`)
      if (electionMs !== undefined)
        lines.push(
          `    heartbeatIntervalMs: ${electionMs}`,
          `    leaseMs: ${5 * electionMs}`,
          `    statusIntervalMs: ${5 * electionMs}`,
          `    electionTimeoutMinMs: ${6 * electionMs}`,
          `    electionTimeoutMaxMs: ${8 * electionMs}`,
        )
      if (meshDegree !== undefined) lines.push('  gossip:', `    meshDegree: ${meshDegree}`)
      writeFileSync(configFile, `${lines.join('\n')}\n`)
    }
    const common = { cli, secretFile, logLevel: 'info', ...(configFile === undefined ? {} : { configFile }) }
    const nodes: TestNode[] = []
    const t0 = performance.now()
    const seed = await startMeshNode(sb, { id: 'n1', ...common })
    nodes.push(seed)
    for (let i = 2; i <= n; i++)
      nodes.push(await startMeshNode(sb, { id: `n${i}`, ...common, join: [seed.gossipPort] }))
    const ids = nodes.map((x) => x.id)
    const converged = await waitFor(
      `${n} nodes converged`,
      CONVERGE_LIMIT_MS,
      () => allList(nodes, ids),
      100,
    ).catch(() => false)
    if (converged === false) return null
    const convergeS = (performance.now() - t0) / 1000
    await sleep(SETTLE_MS)
    const rss = nodes.map((x) => rssMiB(x.proc.pid!))
    const cpuBefore = nodes.map((x) => cpuSeconds(x.proc.pid!))
    await sleep(IDLE_WINDOW_MS)
    const idleCpuPct = nodes.map(
      (x, i) => ((cpuSeconds(x.proc.pid!) - cpuBefore[i]!) / (IDLE_WINDOW_MS / 1000)) * 100,
    )

    const tj = performance.now()
    const joiner = await startMeshNode(sb, {
      id: 'joiner',
      cli,
      secretFile,
      join: [nodes[nodes.length - 1]!.gossipPort],
    })
    await waitFor(
      'joiner API',
      60_000,
      async () => ((await fetch(`${joiner.apiUrl}/health`)).ok ? true : undefined),
      20,
    )
    const apiUp = performance.now()
    await waitFor('joiner listed everywhere', 60_000, () => allList(nodes, ['joiner']), 50)
    const done = performance.now()
    return {
      convergeS,
      joinFromSpawnS: (done - tj) / 1000,
      joinFromApiS: (done - apiUp) / 1000,
      rss,
      idleCpuPct,
    }
  } finally {
    await sb.cleanup()
  }
}

const cpu = cpus()[0]?.model ?? 'unknown CPU'
console.log(
  `# membership benchmark${heartbeatMs === undefined ? '' : ` (heartbeatIntervalMs ${heartbeatMs})`}, idle window ${IDLE_WINDOW_MS} ms after ${SETTLE_MS} ms — ${new Date().toISOString()} — ${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`,
)
console.log(
  '| build | nodes | runs | all list all (s) | join listed everywhere, from spawn (s) | from joiner API up (s) | idle RSS per node (MiB) | idle CPU per node (% of one core) |',
)
console.log('|---|---|---|---|---|---|---|---|')
for (const n of sizes) {
  const results = new Map(builds.map((b) => [b.name, [] as RunResult[]]))
  const failed = new Map(builds.map((b) => [b.name, 0]))
  for (let r = 0; r < runs; r++) {
    for (const b of builds) {
      const res = await runOnce(n, b.cli)
      if (res === null) failed.set(b.name, failed.get(b.name)! + 1)
      else results.get(b.name)!.push(res)
    }
  }
  for (const b of builds) {
    const rs = results.get(b.name)!
    const f = failed.get(b.name)!
    if (rs.length === 0) {
      console.log(
        `| ${b.name} | ${n} | ${runs} | no convergence within ${CONVERGE_LIMIT_MS / 1000} s | - | - | - | - |`,
      )
      continue
    }
    console.log(
      `| ${b.name} | ${n} | ${runs}${f > 0 ? ` (${f} did not converge in ${CONVERGE_LIMIT_MS / 1000} s)` : ''} | ${fmt(stats(rs.map((r) => r.convergeS)))} | ${fmt(stats(rs.map((r) => r.joinFromSpawnS)))} | ${fmt(
        stats(rs.map((r) => r.joinFromApiS)),
      )} | ${fmt(stats(rs.flatMap((r) => r.rss)), 0)} | ${fmt(stats(rs.flatMap((r) => r.idleCpuPct)), 1)} |`,
    )
  }
}
