/**
 * Membership benchmark: N pgmesh processes on loopback (N = 3, 10, 25 by default).
 *   converge  time from spawning all N (all at once, node 1 as the only seed) until every node
 *             lists all N alive
 *   join      a node joins through the last node (not the seed): time from its spawn, and from its
 *             API answering, until every node lists it alive
 *   rss       resident memory of each idle node after the mesh settled
 * Usage: node --conditions=source --import tsx test/bench/membership.bench.ts [--sizes 3,10,25] [--runs 3]
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { generateSecret } from '../../mesh-node/src/secret.js'
import { fetchStatus, startMeshNode, type TestNode } from '../helpers/mesh-cluster.js'
import { Sandbox, waitFor } from '../helpers/processes.js'

const { values } = parseArgs({ options: { sizes: { type: 'string' }, runs: { type: 'string' } } })
const sizes = (values.sizes ?? '3,10,25').split(',').map(Number)
const runs = Number(values.runs ?? '3')

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
}

async function runOnce(n: number): Promise<RunResult> {
  const sb = new Sandbox()
  await sb.init(`bench-${n}`)
  try {
    const secretFile = join(sb.dir, 'cluster.secret')
    writeFileSync(secretFile, generateSecret(), { mode: 0o600 })
    const nodes: TestNode[] = []
    const t0 = performance.now()
    const seed = await startMeshNode(sb, { id: 'n1', secretFile })
    nodes.push(seed)
    for (let i = 2; i <= n; i++)
      nodes.push(await startMeshNode(sb, { id: `n${i}`, secretFile, join: [seed.gossipPort] }))
    const ids = nodes.map((x) => x.id)
    await waitFor(`${n} nodes converged`, 120_000, () => allList(nodes, ids), 100)
    const convergeS = (performance.now() - t0) / 1000
    await sleep(2000)
    const rss = nodes.map((x) => rssMiB(x.proc.pid!))

    const tj = performance.now()
    const joiner = await startMeshNode(sb, {
      id: 'joiner',
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
    return { convergeS, joinFromSpawnS: (done - tj) / 1000, joinFromApiS: (done - apiUp) / 1000, rss }
  } finally {
    await sb.cleanup()
  }
}

const cpu = cpus()[0]?.model ?? 'unknown CPU'
console.log(
  `# membership benchmark — ${new Date().toISOString()} — ${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`,
)
console.log(
  '| nodes | runs | all list all (s) | join listed everywhere, from spawn (s) | from joiner API up (s) | idle RSS per node (MiB) |',
)
console.log('|---|---|---|---|---|---|')
for (const n of sizes) {
  const results: RunResult[] = []
  for (let r = 0; r < runs; r++) results.push(await runOnce(n))
  console.log(
    `| ${n} | ${runs} | ${fmt(stats(results.map((r) => r.convergeS)))} | ${fmt(stats(results.map((r) => r.joinFromSpawnS)))} | ${fmt(
      stats(results.map((r) => r.joinFromApiS)),
    )} | ${fmt(stats(results.flatMap((r) => r.rss)), 0)} |`,
  )
}
