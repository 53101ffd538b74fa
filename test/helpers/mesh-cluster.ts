import type { ChildProcess } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { type ClusterStatus, ClusterStatusSchema, type MemberView } from '@pgmesh/protocol'
import { CLI, freePort, isRunning, type Sandbox, waitFor } from './processes.js'

export interface TestNode {
  readonly id: string
  readonly gossipPort: number
  readonly apiPort: number
  readonly apiUrl: string
  readonly args: readonly string[]
  proc: ChildProcess
}

export interface NodeSpec {
  readonly id: string
  readonly join?: readonly number[]
  readonly secretFile?: string
  readonly priority?: number
  readonly configFile?: string
  readonly extra?: readonly string[]
  /** default debug: test logs are read when a test fails */
  readonly logLevel?: string
  /** another build of the CLI (benchmarks compare builds); default the current bundle */
  readonly cli?: string
}

/** Fast membership timings so failure tests take seconds, written as a config file. */
export async function writeFastTimingsConfig(sandbox: Sandbox, name = 'fast.yaml'): Promise<string> {
  const file = join(sandbox.dir, name)
  await writeFile(
    file,
    [
      'cluster:',
      '  name: e2e',
      '  membership:',
      '    heartbeatIntervalMs: 100',
      '    suspectTimeoutMs: 500',
      '    deadTimeoutMs: 1500',
      '  gossip:',
      '    meshHeartbeatMs: 200',
      '',
    ].join('\n'),
  )
  return file
}

export async function startMeshNode(sandbox: Sandbox, spec: NodeSpec): Promise<TestNode> {
  const gossipPort = await freePort()
  const apiPort = await freePort()
  const args = [
    spec.cli ?? CLI,
    'start',
    '--id',
    spec.id,
    '--gossip',
    `127.0.0.1:${gossipPort}`,
    '--api',
    `127.0.0.1:${apiPort}`,
    '--data-dir',
    join(sandbox.dir, 'data', spec.id),
    '--log-level',
    spec.logLevel ?? 'debug',
    ...(spec.configFile === undefined ? [] : ['--config', spec.configFile]),
    ...(spec.secretFile === undefined ? ['--insecure-dev'] : ['--secret-file', spec.secretFile]),
    ...(spec.priority === undefined ? [] : ['--priority', String(spec.priority)]),
    ...(spec.join ?? []).flatMap((p) => ['--join', `127.0.0.1:${p}`]),
    ...(spec.extra ?? []),
  ]
  const proc = sandbox.spawnNode(args, `${spec.id}.log`)
  return { id: spec.id, gossipPort, apiPort, apiUrl: `http://127.0.0.1:${apiPort}`, args, proc }
}

/** Starts the same node again (same ports, same data dir): a restart. */
export function restartMeshNode(sandbox: Sandbox, node: TestNode): void {
  node.proc = sandbox.spawnNode(node.args, `${node.id}.restart.log`)
}

export async function fetchStatus(node: TestNode): Promise<ClusterStatus> {
  const res = await fetch(`${node.apiUrl}/v1/status`, { signal: AbortSignal.timeout(5000) })
  return ClusterStatusSchema.parse(await res.json())
}

export function memberState(status: ClusterStatus, id: string): MemberView['state'] | undefined {
  return status.members.find((m) => m.id === id)?.state
}

/** Resolves when every node lists exactly `ids` with the given states (default: all alive). */
export function everyoneSees(
  nodes: readonly TestNode[],
  expected: Readonly<Record<string, MemberView['state']>>,
): () => Promise<true | undefined> {
  return async () => {
    for (const n of nodes) {
      const s = await fetchStatus(n)
      const seen = Object.fromEntries(s.members.map((m) => [m.id, m.state]))
      for (const [id, st] of Object.entries(expected)) if (seen[id] !== st) return undefined
    }
    return true
  }
}

/** Waits until the node's API answers /health (it has started and bound its ports). */
export async function waitUntilServing(node: TestNode, timeoutMs = 30_000): Promise<void> {
  await waitFor(`${node.id} to serve its API`, timeoutMs, async () => {
    if (!isRunning(node.proc))
      throw new Error(`${node.id} exited with ${node.proc.exitCode ?? node.proc.signalCode}`)
    const res = await fetch(`${node.apiUrl}/health`, { signal: AbortSignal.timeout(2000) })
    return res.ok ? true : undefined
  })
}

/**
 * One line per node: whether it runs, how many members it lists alive, its gossip peers, and the
 * end of its log if it exited. Appended to a failed wait so a CI log says what went wrong.
 */
export async function describeCluster(sandbox: Sandbox, nodes: readonly TestNode[]): Promise<string> {
  const lines: string[] = []
  for (const n of nodes) {
    if (!isRunning(n.proc)) {
      const log = await readFile(join(sandbox.dir, `${n.id}.log`), 'utf8').catch(() => '')
      lines.push(`${n.id}: exited (${n.proc.exitCode ?? n.proc.signalCode}); log tail: ${log.slice(-600)}`)
      continue
    }
    try {
      const s = await fetchStatus(n)
      const alive = s.members.filter((m) => m.state === 'alive').map((m) => m.id)
      lines.push(
        `${n.id}: ${alive.length} alive, connected ${s.gossip.connectedPeers}, topic peers ${s.gossip.topicPeers}, missing ${nodes
          .map((o) => o.id)
          .filter((id) => !alive.includes(id))
          .join(',')}`,
      )
    } catch (e) {
      lines.push(`${n.id}: running, status failed: ${String(e)}`)
    }
  }
  return lines.join('\n')
}
