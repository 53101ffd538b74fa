import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ApiErrorSchema, type ClusterStatus, MemberRemoveResponseSchema } from '@pgmesh/protocol'
import {
  describeCluster,
  fetchStatus,
  restartMeshNode,
  startMeshNode,
  type TestNode,
  waitUntilServing,
} from './helpers/mesh-cluster.js'
import { runCli, Sandbox, waitFor } from './helpers/processes.js'

const TOKEN = 'members-remove-e2e-token-0123'
const PRIORITIES: Record<string, number> = { n1: 110, n2: 105, n3: 100 }

async function remove(n: TestNode, id: string, token: string | null = TOKEN): Promise<Response> {
  return await fetch(`${n.apiUrl}/v1/members/${id}/remove`, {
    method: 'POST',
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(5_000),
  })
}

const voters = (s: ClusterStatus) => s.election.voters

describe('removing a dead member: it stops counting toward quorum on every node', {
  timeout: 180_000,
}, () => {
  const sb = new Sandbox()
  const nodes: TestNode[] = []
  const byId = (id: string) => nodes.find((n) => n.id === id)!
  let tokens = ''

  before(async () => {
    await sb.init('remove')
    tokens = join(sb.dir, 'tokens')
    await writeFile(tokens, `# e2e\n${TOKEN}\n`, { mode: 0o600 })
    const cluster = [
      'cluster:',
      '  name: rm',
      '  membership: { heartbeatIntervalMs: 200, suspectTimeoutMs: 1500, deadTimeoutMs: 3000 }',
      '  gossip: { meshHeartbeatMs: 200 }',
      '  members:',
      ...Object.entries(PRIORITIES).map(([id, p]) => `    - { id: ${id}, priority: ${p} }`),
    ]
    for (const id of Object.keys(PRIORITIES)) {
      const file = join(sb.dir, `${id}.yaml`)
      await writeFile(file, [`node: { api: { tokensFile: ${tokens} } }`, ...cluster, ''].join('\n'))
      nodes.push(
        await startMeshNode(sb, {
          id,
          priority: PRIORITIES[id],
          configFile: file,
          logLevel: 'info',
          ...(nodes.length === 0 ? {} : { join: [nodes[0]!.gossipPort] }),
        }),
      )
    }
    for (const n of nodes) await waitUntilServing(n)
  })
  after(() => sb.cleanup())

  it('3 founding members elect n1 with 3 voters', async () => {
    await waitFor('every node to see n1 as MASTER of 3 voters', 30_000, async () => {
      for (const n of nodes) {
        const s = await fetchStatus(n)
        if (s.election.master !== 'n1' || voters(s)?.voters.join() !== 'n1,n2,n3') return undefined
        if (s.members.filter((m) => m.state === 'alive').length !== 3) return undefined
      }
      return true
    }).catch(async (e: Error) => {
      throw new Error(`${e.message}\n${await describeCluster(sb, nodes)}`)
    })
  })

  it('refuses: no token, itself, a live member, an unknown id', async () => {
    const n2 = byId('n2')
    assert.equal((await remove(n2, 'n3', null)).status, 401)
    const self = await remove(n2, 'n2')
    assert.equal(self.status, 409)
    assert.equal(ApiErrorSchema.parse(await self.json()).error.code, 'MEMBER_IS_SELF')
    const alive = await remove(n2, 'n3')
    assert.equal(alive.status, 409)
    const body = ApiErrorSchema.parse(await alive.json())
    assert.equal(body.error.code, 'MEMBER_NOT_DEAD')
    assert.match(body.error.message, /n3 is alive/)
    const unknown = await remove(n2, 'n9')
    assert.equal(unknown.status, 404)
    assert.equal(ApiErrorSchema.parse(await unknown.json()).error.code, 'MEMBER_NOT_FOUND')
    assert.equal((await fetchStatus(n2)).removed.length, 0)
  })

  it('kill -9 of n3, then `pgmesh members remove n3` on n2: gone from every node and from the voters', async () => {
    byId('n3').proc.kill('SIGKILL')
    const survivors = [byId('n1'), byId('n2')]
    await waitFor('n3 dead on n1 and n2', 15_000, async () => {
      for (const n of survivors) {
        if ((await fetchStatus(n)).members.find((m) => m.id === 'n3')?.state !== 'dead') return undefined
      }
      return true
    })
    // a dead member still counts: without the removal the 2 survivors have no spare
    assert.deepEqual(voters(await fetchStatus(byId('n1')))?.voters, ['n1', 'n2', 'n3'])

    const t0 = Date.now()
    const r = await runCli(sb, [
      'members',
      'remove',
      'n3',
      '--api',
      `127.0.0.1:${byId('n2').apiPort}`,
      '--token-file',
      tokens,
    ])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /removed n3/)

    const settled = await waitFor('n3 out of every status and of the voters', 15_000, async () => {
      const out: ClusterStatus[] = []
      for (const n of survivors) {
        const s = await fetchStatus(n)
        if (s.members.some((m) => m.id === 'n3')) return undefined
        if (voters(s)?.voters.join() !== 'n1,n2' || voters(s)?.prev !== null) return undefined
        out.push(s)
      }
      return out
    })
    process.stdout.write(`# removal of n3 reached both survivors' voters in ${Date.now() - t0} ms\n`)
    for (const s of settled) {
      assert.deepEqual(
        s.removed.map((x) => x.id),
        ['n3'],
        `${s.self} lists the removal (n1 learnt it by gossip)`,
      )
      assert.equal(s.election.master, 'n1')
      assert.deepEqual(
        s.members.map((m) => [m.id, m.state]),
        [
          ['n1', 'alive'],
          ['n2', 'alive'],
        ],
      )
    }
    // removing it again is harmless
    const again = await remove(byId('n1'), 'n3')
    assert.equal(again.status, 200)
    assert.equal(MemberRemoveResponseSchema.parse(await again.json()).removed, 'n3')
  })

  it('the removed node restarts (a new incarnation) and rejoins as a voter', async () => {
    const n3 = byId('n3')
    restartMeshNode(sb, n3)
    await waitUntilServing(n3)
    await waitFor('n3 alive and a voter again on every node', 30_000, async () => {
      for (const n of nodes) {
        const s = await fetchStatus(n)
        if (s.members.find((m) => m.id === 'n3')?.state !== 'alive') return undefined
        if (voters(s)?.voters.join() !== 'n1,n2,n3' || s.removed.length > 0) return undefined
      }
      return true
    }).catch(async (e: Error) => {
      throw new Error(`${e.message}\n${await describeCluster(sb, nodes)}`)
    })
  })
})
