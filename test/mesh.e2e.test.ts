import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { ClusterStatusSchema } from '@pgmesh/protocol'
import {
  everyoneSees,
  fetchStatus,
  memberState,
  restartMeshNode,
  startMeshNode,
  type TestNode,
  writeFastTimingsConfig,
} from './helpers/mesh-cluster.js'
import { exited, isRunning, ROOT, runCli, Sandbox, waitFor } from './helpers/processes.js'

/** Sends `bytes` to a TCP port and closes; resolves whatever the peer does. */
async function blast(port: number, bytes: Uint8Array): Promise<void> {
  await new Promise<void>((done) => {
    const s = connect(port, '127.0.0.1')
    s.setTimeout(3000, () => s.destroy())
    s.on('error', () => done())
    s.on('close', () => done())
    s.on('connect', () => {
      s.write(bytes, () => s.end())
    })
    s.resume()
  })
}

describe('mesh: 3 processes, seed join, scale-out, failures, bad input', { timeout: 240_000 }, () => {
  const sb = new Sandbox()
  let secret = ''
  let config = ''
  const nodes: TestNode[] = []
  const byId = (id: string) => nodes.find((n) => n.id === id)!
  const alive = (ids: string[]) => Object.fromEntries(ids.map((i) => [i, 'alive' as const]))

  before(async () => {
    await sb.init('mesh')
    secret = join(sb.dir, 'cluster.secret')
    const kg = await runCli(sb, ['keygen', '--out', secret])
    assert.equal(kg.code, 0, kg.stderr)
    config = await writeFastTimingsConfig(sb)
  })
  after(() => sb.cleanup())

  it('nodes 2 and 3, given only node 1, all list 3 alive members', async () => {
    const n1 = await startMeshNode(sb, { id: 'n1', priority: 110, secretFile: secret, configFile: config })
    nodes.push(n1)
    nodes.push(
      await startMeshNode(sb, {
        id: 'n2',
        priority: 105,
        secretFile: secret,
        configFile: config,
        join: [n1.gossipPort],
      }),
    )
    nodes.push(
      await startMeshNode(sb, {
        id: 'n3',
        priority: 100,
        secretFile: secret,
        configFile: config,
        join: [n1.gossipPort],
      }),
    )
    await waitFor('3 alive members on every node', 20_000, everyoneSees(nodes, alive(['n1', 'n2', 'n3'])))
    const s = await fetchStatus(byId('n2'))
    assert.equal(s.cluster, 'e2e')
    assert.equal(s.members.find((m) => m.id === 'n1')?.priority, 110)
    assert.ok(s.members.every((m) => m.peerId.startsWith('12D3Koo')))
  })

  it('the mesh does not stay a star: non-seed nodes connect to each other', async () => {
    await waitFor('n2 and n3 exchanging gossip with 2 peers each', 10_000, async () => {
      const [a, b] = await Promise.all([fetchStatus(byId('n2')), fetchStatus(byId('n3'))])
      return a.gossip.topicPeers >= 2 && b.gossip.topicPeers >= 2 ? true : undefined
    })
  })

  it('a 4th node joining through node 3 (not the seed) is listed by all', async () => {
    nodes.push(
      await startMeshNode(sb, {
        id: 'n4',
        secretFile: secret,
        configFile: config,
        join: [byId('n3').gossipPort],
      }),
    )
    await waitFor(
      '4 alive members on every node',
      20_000,
      everyoneSees(nodes, alive(['n1', 'n2', 'n3', 'n4'])),
    )
    const out = await runCli(sb, ['status', '--api', byId('n1').apiUrl])
    assert.equal(out.code, 0, out.stderr)
    assert.match(out.stdout, /4 alive, 0 suspect, 0 dead, 0 left/)
    assert.match(out.stdout, /n4\s+alive/)
    const json = await runCli(sb, ['status', '--api', byId('n2').apiUrl, '--json'])
    assert.equal(json.code, 0, json.stderr)
    assert.deepEqual(
      ClusterStatusSchema.parse(JSON.parse(json.stdout)).members.map((m) => m.id),
      ['n1', 'n2', 'n3', 'n4'],
    )
  })

  it('a node with a different secret is never listed', async () => {
    const otherSecret = join(sb.dir, 'other.secret')
    assert.equal((await runCli(sb, ['keygen', '--out', otherSecret])).code, 0)
    const rogue = await startMeshNode(sb, {
      id: 'rogue',
      secretFile: otherSecret,
      configFile: config,
      join: [byId('n1').gossipPort],
    })
    await waitFor('rogue API up', 15_000, async () =>
      (await fetch(`${rogue.apiUrl}/health`)).ok ? true : undefined,
    )
    await sleep(3000)
    for (const n of nodes)
      assert.equal(memberState(await fetchStatus(n), 'rogue'), undefined, `${n.id} lists the rogue node`)
    const own = await fetchStatus(rogue)
    assert.deepEqual(
      own.members.map((m) => m.id),
      ['rogue'],
    )
    assert.equal(own.gossip.connectedPeers, 0)
    rogue.proc.kill('SIGKILL')
  })

  it('random bytes and oversized frames on the gossip and API ports leave every node running', async () => {
    for (const n of nodes) {
      for (const port of [n.gossipPort, n.apiPort]) {
        await blast(port, randomBytes(4096))
        await blast(port, randomBytes(8 * 1024 * 1024))
        await blast(
          port,
          new TextEncoder().encode(
            `GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(100_000)}\r\n\r\n`,
          ),
        )
        await blast(port, new TextEncoder().encode('/multistream/1.0.0\n'.repeat(1000)))
      }
    }
    const bad = await fetch(`${byId('n1').apiUrl}/v1/members?state=zombie`)
    assert.equal(bad.status, 400)
    await waitFor(
      '4 alive members after the noise',
      10_000,
      everyoneSees(nodes, alive(['n1', 'n2', 'n3', 'n4'])),
    )
    for (const n of nodes) assert.ok(isRunning(n.proc), `${n.id} exited`)
  })

  it('malformed gossip from a peer holding the secret is dropped and counted', async () => {
    const garbage = sb.spawnNode(
      [
        '--conditions=source',
        '--import',
        'tsx',
        join(ROOT, 'test', 'helpers', 'garbage-peer.ts'),
        secret,
        String(byId('n1').gossipPort),
        'e2e',
      ],
      'garbage.log',
      ROOT, // so --import tsx resolves from the repo's node_modules
    )
    assert.equal(await exited(garbage, 30_000), 0)
    const s = await waitFor('drops counted on n1', 10_000, async () => {
      const st = await fetchStatus(byId('n1'))
      return Object.keys(st.gossip.dropped).length >= 4 ? st : undefined
    })
    for (const code of [
      'GOSSIP_WRONG_CLUSTER',
      'GOSSIP_PEER_MISMATCH',
      'GOSSIP_UNSUPPORTED_VERSION',
      'GOSSIP_UNKNOWN_PEER',
    ]) {
      assert.ok(
        (s.gossip.dropped[code] ?? 0) > 0,
        `no drop counted for ${code}: ${JSON.stringify(s.gossip.dropped)}`,
      )
    }
    assert.equal(memberState(s, 'impostor'), undefined)
    for (const n of nodes) assert.ok(isRunning(n.proc), `${n.id} exited`)
  })

  it('kill -9 of a node: the others mark it dead within the configured bound', async () => {
    const n2 = byId('n2')
    const killedAt = Date.now()
    n2.proc.kill('SIGKILL')
    const others = nodes.filter((n) => n.id !== 'n2')
    // deadTimeoutMs is 1500 in the test config; allow for scheduling on a loaded 2-core machine
    await waitFor('n2 dead everywhere', 1500 + 3000, everyoneSees(others, { n2: 'dead' }), 25)
    const took = Date.now() - killedAt
    assert.ok(took >= 1000, `marked dead after only ${took} ms: detection must come from missed heartbeats`)
  })

  it('SIGTERM of a node: the others mark it left (graceful leave, not a timeout)', async () => {
    const n4 = byId('n4')
    n4.proc.kill('SIGTERM')
    const others = nodes.filter((n) => n.id !== 'n2' && n.id !== 'n4')
    await waitFor('n4 left everywhere', 3000, everyoneSees(others, { n4: 'left' }), 25)
    assert.equal(await exited(n4.proc, 10_000), 0)
  })

  it('a restarted node rejoins with a higher incarnation', async () => {
    const n2 = byId('n2')
    const before = (await fetchStatus(byId('n1'))).members.find((m) => m.id === 'n2')!
    restartMeshNode(sb, n2)
    const others = nodes.filter((n) => n.id !== 'n4')
    await waitFor('n2 alive again', 20_000, everyoneSees(others, alive(['n1', 'n2', 'n3'])))
    const afterRestart = (await fetchStatus(byId('n1'))).members.find((m) => m.id === 'n2')!
    assert.ok(afterRestart.incarnation > before.incarnation)
    assert.equal(
      afterRestart.peerId,
      before.peerId,
      'the node key persists, so the peer id survives restarts',
    )
  })
})
