/**
 * Control plane benchmark: latency of the aggregated `GET /v1/status` (a fan-out of
 * `/v1/status` + `/v1/backends` to every node, then one view) through workerd and through Node,
 * at N = 3 and 10 nodes on loopback, against `GET /v1/status` of one node directly (what a
 * client without a control plane asks). Requests are sequential, after a warm-up.
 *   direct     one node's own /v1/status
 *   workerd    the bundled Worker on workerd (deploy/edge)
 *   node       the same app under @hono/node-server
 * Usage: node --conditions=source --import tsx test/bench/edge-status.bench.ts [--sizes 3,10] [--requests 50]
 */
import { writeFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { generateSecret } from '../../mesh-node/src/secret.js'
import { buildEdge, startNodeControlPlane, startWorkerd } from '../helpers/edge.js'
import { fetchStatus, startMeshNode, type TestNode } from '../helpers/mesh-cluster.js'
import { Sandbox, waitFor } from '../helpers/processes.js'

const { values } = parseArgs({ options: { sizes: { type: 'string' }, requests: { type: 'string' } } })
const sizes = (values.sizes ?? '3,10').split(',').map(Number)
const requests = Number(values.requests ?? '50')
const WARMUP = 5

const quantile = (xs: readonly number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN
}

async function timeStatus(url: string, n: number): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < WARMUP + n; i++) {
    const t0 = performance.now()
    const res = await fetch(`${url}/v1/status`, { signal: AbortSignal.timeout(10_000) })
    const body = (await res.json()) as { aggregate?: { reachable: number; total: number } }
    if (res.status !== 200) throw new Error(`${url} answered ${res.status}`)
    if (body.aggregate !== undefined && body.aggregate.reachable !== body.aggregate.total) {
      throw new Error(`${url}: only ${body.aggregate.reachable} of ${body.aggregate.total} nodes answered`)
    }
    if (i >= WARMUP) out.push(performance.now() - t0)
  }
  return out
}

async function runSize(sb: Sandbox, edgeDir: string, n: number): Promise<Record<string, number[]>> {
  const secretFile = join(sb.dir, `cluster-${n}.secret`)
  writeFileSync(secretFile, generateSecret(), { mode: 0o600 })
  const common = {
    secretFile,
    logLevel: 'warn',
    extra: ['--cluster', `bench${n}`],
  }
  const nodes: TestNode[] = [await startMeshNode(sb, { id: `n1-${n}`, ...common })]
  try {
    for (let i = 2; i <= n; i++) {
      nodes.push(await startMeshNode(sb, { id: `n${i}-${n}`, ...common, join: [nodes[0]!.gossipPort] }))
    }
    await waitFor(`${n} alive nodes`, 300_000, async () => {
      for (const node of nodes) {
        const s = await fetchStatus(node).catch(() => null)
        if (s === null || s.counts.alive !== n) return undefined
      }
      return true
    })
    await sleep(2_000)
    const config = { name: `bench-${n}`, nodes: nodes.map((x) => ({ url: x.apiUrl })), nodeTimeoutMs: 5_000 }
    const workerd = await startWorkerd(sb, edgeDir, config, `workerd-${n}`)
    const onNode = await startNodeControlPlane(sb, edgeDir, config, `cp-node-${n}`)
    try {
      return {
        direct: await timeStatus(nodes[0]!.apiUrl, requests),
        workerd: await timeStatus(workerd.url, requests),
        node: await timeStatus(onNode.url, requests),
      }
    } finally {
      workerd.proc.kill('SIGTERM')
      onNode.proc.kill('SIGTERM')
    }
  } finally {
    for (const node of nodes) node.proc.kill('SIGTERM')
    await sleep(1_000)
  }
}

const sb = new Sandbox()
await sb.init('bench-edge')
try {
  const edgeDir = await buildEdge(sb)
  const cpu = cpus()[0]?.model ?? 'unknown CPU'
  console.log(
    `# aggregated /v1/status — ${new Date().toISOString()} — ${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`,
  )
  console.log(
    `# load average at start: ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
  )
  console.log('| nodes | path | requests | median (ms) | p90 (ms) | max (ms) | median ÷ direct |')
  console.log('|---|---|---|---|---|---|---|')
  for (const n of sizes) {
    const r = await runSize(sb, edgeDir, n)
    const base = quantile(r.direct ?? [], 0.5)
    for (const [path, xs] of Object.entries(r)) {
      const med = quantile(xs, 0.5)
      console.log(
        `| ${n} | ${path} | ${xs.length} | ${med.toFixed(1)} | ${quantile(xs, 0.9).toFixed(1)} | ${Math.max(...xs).toFixed(1)} | ${(med / base).toFixed(2)} |`,
      )
    }
    console.log(
      `# load average after ${n} nodes: ${loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')}`,
    )
  }
} finally {
  await sb.cleanup()
}
