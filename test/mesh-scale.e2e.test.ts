import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import {
  describeCluster,
  everyoneSees,
  startMeshNode,
  type TestNode,
  waitUntilServing,
} from './helpers/mesh-cluster.js'
import { runCli, Sandbox, waitFor } from './helpers/processes.js'

/**
 * More than 10 members on one address: gossipsub's IP-colocation penalty once graylisted every
 * peer once 15 shared an address (penalty (n-10)² × 5 past the graylist threshold of 80) and
 * silenced the mesh. Slow heartbeats keep 16 processes within 2 cores, and each node is started
 * once the previous one serves, so 16 start-ups never compete for the CPU at once.
 */
describe('mesh: 16 nodes sharing one address', { timeout: 330_000 }, () => {
  const sb = new Sandbox()
  let secret = ''
  let config = ''
  before(async () => {
    await sb.init('scale')
    secret = join(sb.dir, 'cluster.secret')
    await runCli(sb, ['keygen', '--out', secret])
    config = join(sb.dir, 'slow.yaml')
    await writeFile(
      config,
      'cluster:\n  membership:\n    heartbeatIntervalMs: 2000\n    suspectTimeoutMs: 8000\n    deadTimeoutMs: 20000\n',
    )
  })
  after(() => sb.cleanup())

  it('every node lists all 16 alive', async () => {
    const nodes: TestNode[] = []
    const seed = await startMeshNode(sb, {
      id: 'n01',
      secretFile: secret,
      configFile: config,
      logLevel: 'info',
    })
    nodes.push(seed)
    await waitUntilServing(seed)
    for (let i = 2; i <= 16; i++) {
      const id = `n${String(i).padStart(2, '0')}`
      const node = await startMeshNode(sb, {
        id,
        secretFile: secret,
        configFile: config,
        logLevel: 'info',
        join: [seed.gossipPort],
      })
      nodes.push(node)
      await waitUntilServing(node)
    }
    const all = Object.fromEntries(nodes.map((n) => [n.id, 'alive' as const]))
    try {
      await waitFor('16 alive members on every node', 180_000, everyoneSees(nodes, all), 500)
    } catch (e) {
      throw new Error(`${String(e)}\n${await describeCluster(sb, nodes)}`)
    }
  })
})
