/**
 * Config propagation benchmark: how long after `PUT /v1/config` on one node every node of an N-node
 * mesh runs the new version (N = 3, 10 by default). The edit changes a live setting
 * (`membership.leftRetentionMs`) so nothing else moves. Each node logs "cluster config version V
 * applied" with its wall-clock time once the version is stored and applied; all nodes share this
 * machine's clock.
 *   put     the PUT's answer (the node that took the edit has applied it)
 *   all     the last node's "applied" line, from just before the PUT
 * The stack pgmesh replaces has no counterpart: HAProxy configs are copied and reloaded by hand or
 * by external tooling, so the figure is absolute.
 * Usage: node --conditions=source --import tsx test/bench/config-propagation.bench.ts [--sizes 3,10] [--edits 10]
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { generateSecret } from '../../mesh-node/src/secret.js'
import { fetchStatus, startMeshNode, type TestNode } from '../helpers/mesh-cluster.js'
import { Sandbox, waitFor } from '../helpers/processes.js'

const { values } = parseArgs({ options: { sizes: { type: 'string' }, edits: { type: 'string' } } })
const sizes = (values.sizes ?? '3,10').split(',').map(Number)
const edits = Number(values.edits ?? '10')
const TOKEN = 'bench-config-token-0123456789'

/** wall-clock ms of the node's "cluster config version V applied" line, or null */
function appliedAt(sb: Sandbox, node: TestNode, version: number): number | null {
  const log = readFileSync(join(sb.dir, `${node.id}.log`), 'utf8')
  const needle = `"msg":"cluster config version ${version} applied"`
  for (const line of log.split('\n')) {
    if (!line.includes(needle)) continue
    return Date.parse((JSON.parse(line) as { time: string }).time)
  }
  return null
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return { min: s[0]!, median: s[Math.floor(s.length / 2)]!, max: s[s.length - 1]! }
}
const fmt = (x: { min: number; median: number; max: number }) =>
  `${x.median.toFixed(0)} (${x.min.toFixed(0)}–${x.max.toFixed(0)})`

async function runSize(n: number): Promise<{ put: number[]; all: number[] }> {
  const sb = new Sandbox()
  await sb.init(`bench-config-${n}`)
  try {
    const secretFile = join(sb.dir, 'cluster.secret')
    writeFileSync(secretFile, generateSecret(), { mode: 0o600 })
    writeFileSync(join(sb.dir, 'tokens'), `${TOKEN}\n`, { mode: 0o600 })
    const configFile = join(sb.dir, 'node.yaml')
    writeFileSync(
      configFile,
      `node:\n  api: { tokensFile: ${join(sb.dir, 'tokens')} }\ncluster:\n  name: bench\n`,
    )
    const common = { secretFile, configFile, logLevel: 'info', extra: ['--cluster', 'bench'] }
    const nodes: TestNode[] = [await startMeshNode(sb, { id: 'n1', ...common })]
    for (let i = 2; i <= n; i++) {
      nodes.push(await startMeshNode(sb, { id: `n${i}`, ...common, join: [nodes[0]!.gossipPort] }))
    }
    await waitFor(`${n} nodes on version 1`, 120_000, async () => {
      for (const node of nodes) {
        const s = await fetchStatus(node).catch(() => null)
        if (s === null || s.counts.alive !== n || s.config?.version !== 1) return undefined
      }
      return true
    })
    await sleep(2_000)
    const put: number[] = []
    const all: number[] = []
    for (let e = 0; e < edits; e++) {
      const version = e + 2
      const target = nodes[e % n]!
      const t0 = Date.now()
      const res = await fetch(`${target.apiUrl}/v1/config`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify({
          cluster: { name: 'bench', membership: { leftRetentionMs: 600_000 + version } },
          baseVersion: version - 1,
        }),
        signal: AbortSignal.timeout(10_000),
      })
      if (res.status !== 200) throw new Error(`PUT answered ${res.status}: ${await res.text()}`)
      put.push(Date.now() - t0)
      const times = await waitFor(`version ${version} on every node`, 30_000, async () => {
        const ts = nodes.map((node) => appliedAt(sb, node, version))
        return ts.every((t) => t !== null) ? (ts as number[]) : undefined
      })
      all.push(Math.max(...times) - t0)
      await sleep(500)
    }
    return { put, all }
  } finally {
    await sb.cleanup()
  }
}

const cpu = cpus()[0]?.model ?? 'unknown CPU'
console.log(
  `# config propagation — ${new Date().toISOString()} — ${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`,
)
console.log('| nodes | edits | PUT answered (ms) | applied on every node (ms) |')
console.log('|---|---|---|---|')
for (const n of sizes) {
  const r = await runSize(n)
  console.log(`| ${n} | ${edits} | ${fmt(stats(r.put))} | ${fmt(stats(r.all))} |`)
}
