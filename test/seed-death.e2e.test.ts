import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import {
  describeCluster,
  fetchStatus,
  restartMeshNode,
  startMeshNode,
  type TestNode,
} from './helpers/mesh-cluster.js'
import { Sandbox, waitFor } from './helpers/processes.js'

const PRIORITIES: Record<string, number> = { n1: 110, n2: 105, n3: 100 }

async function aliveIds(n: TestNode): Promise<string[]> {
  const s = await fetchStatus(n)
  return s.members
    .filter((m) => m.state === 'alive')
    .map((m) => m.id)
    .sort()
}

/**
 * The mesh is a star around its seed for its first moments. Before push-pull, a seed killed right
 * after the others joined left them each knowing only itself and the dead seed: no MASTER again.
 */
describe('the seed dies right after the others join: nobody is stranded', { timeout: 240_000 }, () => {
  const sb = new Sandbox()
  const nodes: TestNode[] = []
  after(() => sb.cleanup())

  it('n1 killed within a second of n2 and n3 joining: they list each other and elect a MASTER', async () => {
    await sb.init('seed-death')
    const file = join(sb.dir, 'cluster.yaml')
    await writeFile(
      file,
      [
        'cluster:',
        '  name: seed',
        '  membership: { heartbeatIntervalMs: 200, suspectTimeoutMs: 1500, deadTimeoutMs: 3000 }',
        '  members:',
        ...Object.entries(PRIORITIES).map(([id, p]) => `    - { id: ${id}, priority: ${p} }`),
        '',
      ].join('\n'),
    )
    const seed = await startMeshNode(sb, { id: 'n1', priority: 110, configFile: file, logLevel: 'info' })
    nodes.push(seed)
    await waitFor('n1 serving', 30_000, async () =>
      (await fetchStatus(seed).catch(() => null)) ? true : undefined,
    )
    for (const id of ['n2', 'n3']) {
      nodes.push(
        await startMeshNode(sb, {
          id,
          priority: PRIORITIES[id],
          configFile: file,
          join: [seed.gossipPort],
          logLevel: 'info',
        }),
      )
    }
    // soon after the seed lists both joiners it dies: no graceful leave, well within a second
    await waitFor(
      'n1 to hear both joiners',
      60_000,
      async () => ((await aliveIds(seed).catch(() => [])).length === 3 ? true : undefined),
      20,
    )
    await new Promise((r) => setTimeout(r, 500))
    seed.proc.kill('SIGKILL')
    const [n2, n3] = [nodes[1]!, nodes[2]!]
    await waitFor('n2 and n3 to list each other alive', 30_000, async () => {
      const [a, b] = await Promise.all([aliveIds(n2), aliveIds(n3)])
      return a.join() === 'n2,n3' && b.join() === 'n2,n3' ? true : undefined
    }).catch(async (e: unknown) => {
      throw new Error(`${(e as Error).message}\n${await describeCluster(sb, [n2, n3])}`)
    })
    await waitFor('a MASTER among the survivors', 30_000, async () => {
      const [a, b] = await Promise.all([fetchStatus(n2), fetchStatus(n3)])
      const m = a.election.master
      return m !== null && m === b.election.master && a.election.vipHolders.length === 1 ? true : undefined
    })
    const s = await fetchStatus(n2)
    assert.equal(s.election.master, 'n2', 'the highest surviving priority is MASTER')
  })

  it('n3 restarted with only the dead seed to join rejoins through the peers it persisted', async () => {
    const n3 = nodes[2]!
    n3.proc.kill('SIGTERM')
    await waitFor('n3 to stop', 20_000, async () =>
      n3.proc.exitCode !== null || n3.proc.signalCode !== null ? true : undefined,
    )
    // same data dir (peers.json), same arguments: its only --join is n1, which is dead
    restartMeshNode(sb, n3)
    await waitFor('the restarted n3 to list n2 alive', 60_000, async () => {
      const ids: string[] = await aliveIds(n3).catch(() => [])
      return ids.includes('n2') ? true : undefined
    }).catch(async (e: unknown) => {
      throw new Error(`${(e as Error).message}\n${await describeCluster(sb, [nodes[1]!, n3])}`)
    })
    const s = await fetchStatus(nodes[1]!)
    assert.equal(s.members.find((m) => m.id === 'n3')?.state, 'alive', 'n2 hears the restarted n3')
  })
})
