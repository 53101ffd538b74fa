/**
 * A hostile peer holding the cluster secret against 3 real nodes: each attack is refused and
 * counted, the cluster keeps exactly one MASTER and keeps serving its listener, and nothing runs
 * that the nodes' own config does not allow.
 */
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { connect, createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { type ClusterStatus, ConfigViewSchema } from '@pgmesh/protocol'
import { configHash } from '../mesh-node/src/config-sync/config-hash.js'
import { fileConfigStore } from '../mesh-node/src/config-sync/config-store.js'
import {
  describeCluster,
  fetchStatus,
  startMeshNode,
  type TestNode,
  waitUntilServing,
} from './helpers/mesh-cluster.js'
import {
  exited,
  freePort,
  isRunning,
  ROOT,
  runCli,
  Sandbox,
  waitFor,
  waitForLogLine,
} from './helpers/processes.js'

const PRIORITIES: Record<string, number> = { n1: 110, n2: 105, n3: 100 }
const CLUSTER = 'hostile'

/** Every attack below is fixed by this wave: none runs as todo any more. */
const NEEDS_WIRING = {}
const pending = (_reason: string) => ({})

interface Cluster {
  readonly sb: Sandbox
  readonly nodes: TestNode[]
  readonly secret: string
  /** each node's own bind of the `svc` listener */
  readonly svcPorts: Record<string, number>
  readonly markers: string
}

/** An echo server the `svc` listener of every node proxies to. */
async function echoServer(): Promise<Server> {
  const s = createServer((c) => c.pipe(c))
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  return s
}

async function startCluster(name: string, echoPort: number): Promise<Cluster> {
  const sb = new Sandbox()
  await sb.init(name)
  const secret = join(sb.dir, 'cluster.secret')
  const k = await runCli(sb, ['keygen', '--out', secret])
  assert.equal(k.code, 0, k.stderr)
  const markers = join(sb.dir, 'markers')
  const svcPorts: Record<string, number> = {}
  const cluster = [
    'cluster:',
    `  name: ${CLUSTER}`,
    '  membership: { heartbeatIntervalMs: 200, suspectTimeoutMs: 1500, deadTimeoutMs: 4000 }',
    '  gossip: { meshHeartbeatMs: 200 }',
    // a long lease: on this shared machine a starved process must not lose MASTER on its own
    '  election: { leaseMs: 3000, heartbeatIntervalMs: 200, electionTimeoutMinMs: 3200, electionTimeoutMaxMs: 4000, statusIntervalMs: 500 }',
    '  members:',
    ...Object.entries(PRIORITIES).map(([id, p]) => `    - { id: ${id}, priority: ${p} }`),
    '  vip: { address: 198.18.0.100/24, driver: none }',
    '  listeners:',
    `    - { name: svc, bind: "127.0.0.1:0", role: servers, servers: [{ address: "127.0.0.1:${echoPort}" }] }`,
  ]
  const nodes: TestNode[] = []
  for (const id of Object.keys(PRIORITIES)) {
    svcPorts[id] = await freePort()
    const file = join(sb.dir, `${id}.yaml`)
    const node = [
      'node:',
      `  listenerBinds: { svc: "127.0.0.1:${svcPorts[id]}" }`,
      // what these hosts allow the cluster config: no programs, backends on 127.0.0.1 only, VIPs in 198.18.0.0/24
      '  allow: { commands: [], backendCidrs: [127.0.0.1/32], vipCidrs: [198.18.0.0/24] }',
    ]
    await writeFile(file, [...node, ...cluster, ''].join('\n'))
    nodes.push(
      await startMeshNode(sb, {
        id,
        priority: PRIORITIES[id],
        configFile: file,
        secretFile: secret,
        logLevel: 'info',
        ...(nodes.length === 0 ? {} : { join: [nodes[0]!.gossipPort] }),
      }),
    )
  }
  for (const n of nodes) await waitUntilServing(n)
  const c = { sb, nodes, secret, svcPorts, markers }
  await waitFor('one MASTER agreed by all three', 60_000, async () =>
    (await oneMaster(c)) ? true : undefined,
  ).catch(async (e: unknown) => {
    throw new Error(`${(e as Error).message}\n${await describeCluster(sb, nodes)}`)
  })
  return c
}

/** The MASTER every node agrees on while exactly one node is MASTER, else null. */
async function oneMaster(c: Cluster): Promise<string | null> {
  const statuses: ClusterStatus[] = await Promise.all(c.nodes.map(fetchStatus))
  const masters = statuses.filter((s) => s.election.state === 'MASTER').map((s) => s.self)
  const agreed = new Set(statuses.map((s) => s.election.master))
  return masters.length === 1 && agreed.size === 1 && agreed.has(masters[0]!) ? masters[0]! : null
}

/** One round trip through a node's `svc` listener. */
function echoThrough(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1')
    let got = ''
    const timer = setTimeout(() => {
      s.destroy()
      reject(new Error(`no echo through 127.0.0.1:${port}`))
    }, 5_000)
    s.on('connect', () => s.write('ping\n'))
    s.on('data', (b) => {
      got += b.toString()
      if (got.includes('\n')) {
        clearTimeout(timer)
        s.end()
        resolve(got.trim())
      }
    })
    s.on('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
  })
}

let intruders = 0

/**
 * The peer performs `attack` for `holdMs`, then exits; its JSON report. Each run is a new process
 * with a new key, so it speaks as a new member id: the id an earlier run used stays pinned to that
 * run's peer id (it never said goodbye), and the mesh would refuse the new key under it.
 */
async function attack(
  c: Cluster,
  name: string,
  arg: unknown,
  holdMs = 3_000,
): Promise<Record<string, unknown>> {
  const p = c.sb.spawnNode(
    [
      '--conditions=source',
      '--import',
      'tsx',
      join(ROOT, 'test', 'helpers', 'garbage-peer.ts'),
      c.secret,
      String(c.nodes[0]!.gossipPort),
      CLUSTER,
      '--attack',
      name,
      '--arg',
      JSON.stringify({ as: `intruder${++intruders}`, ...(arg as Record<string, unknown>) }),
      '--hold',
      String(holdMs),
    ],
    `attack-${name}.log`,
    ROOT, // so --import tsx resolves from the repo's node_modules
  )
  let out = ''
  p.stdout?.on('data', (b: Buffer) => {
    out += b.toString()
  })
  assert.equal(await exited(p, holdMs + 40_000), 0, `the ${name} attack did not run to the end`)
  return JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>
}

const dropped = async (n: TestNode, code: string) => (await fetchStatus(n)).gossip.dropped[code] ?? 0

async function configVersion(n: TestNode): Promise<number> {
  const res = await fetch(`${n.apiUrl}/v1/config`, { signal: AbortSignal.timeout(5_000) })
  return ConfigViewSchema.parse(await res.json()).version
}

/** Waits until every node counted more CONFIG_NOT_ALLOWED refusals than `before` (default none). */
async function countedOnEveryNode(c: Cluster, before: readonly number[] = []): Promise<void> {
  await waitFor('the refusal counted on every node', 20_000, async () => {
    for (const [i, n] of c.nodes.entries()) {
      if ((await dropped(n, 'CONFIG_NOT_ALLOWED')) <= (before[i] ?? 0)) return undefined
    }
    return true
  })
}

/** What must hold after every attack. */
async function assertHealthy(c: Cluster, markers: readonly string[] = []): Promise<void> {
  for (const n of c.nodes) assert.ok(isRunning(n.proc), `${n.id} exited`)
  const master = await waitFor('exactly one MASTER agreed by all', 15_000, () =>
    oneMaster(c).then((m) => m ?? undefined),
  )
  assert.ok(master in PRIORITIES)
  for (const n of c.nodes) assert.equal(await echoThrough(c.svcPorts[n.id]!), 'ping', `${n.id} serves svc`)
  for (const m of markers)
    assert.equal(existsSync(m), false, `${m} exists: a program the nodes do not allow ran`)
}

describe('hostile peer holding the secret: attacks on what a host runs and where it connects', {
  timeout: 300_000,
}, () => {
  let echo: Server
  let c: Cluster

  before(async () => {
    echo = await echoServer()
    c = await startCluster('hostile', (echo.address() as { port: number }).port)
  })
  after(async () => {
    await c?.sb.cleanup()
    await new Promise((r) => echo.close(r))
  })

  it('malformed gossip and frames are dropped and counted; the cluster keeps its MASTER and serves', async () => {
    const p = c.sb.spawnNode(
      [
        '--conditions=source',
        '--import',
        'tsx',
        join(ROOT, 'test', 'helpers', 'garbage-peer.ts'),
        c.secret,
        String(c.nodes[0]!.gossipPort),
        CLUSTER,
      ],
      'garbage.log',
      ROOT,
    )
    assert.equal(await exited(p, 60_000), 0)
    await waitFor('drops counted on n1', 10_000, async () =>
      (await dropped(c.nodes[0]!, 'GOSSIP_PEER_MISMATCH')) > 0 ? true : undefined,
    )
    await assertHealthy(c)
  })

  it(
    'a pushed exec check is not run, the version is refused on every node and counted',
    NEEDS_WIRING,
    async () => {
      const marker = join(c.markers, 'exec-check-ran')
      const before = await Promise.all(c.nodes.map(configVersion))
      const r = await attack(c, 'config-push', {
        set: {
          checks: [
            {
              name: 'owned',
              kind: 'exec',
              command: ['/bin/sh', '-c', `mkdir -p '${c.markers}' && touch '${marker}'`],
              intervalMs: 200,
              timeoutMs: 200,
            },
          ],
        },
      })
      assert.equal(r.version, before[0]! + 1)
      await waitFor('the refusal counted on every node', 20_000, async () => {
        for (const n of c.nodes) if ((await dropped(n, 'CONFIG_NOT_ALLOWED')) === 0) return undefined
        return true
      })
      assert.deepEqual(await Promise.all(c.nodes.map(configVersion)), before, 'no node adopted the version')
      await assertHealthy(c, [marker])
    },
  )

  it('a pushed notify script is not run, even on the MASTER whose VIP it moves', NEEDS_WIRING, async () => {
    const marker = join(c.markers, 'notify-ran')
    const before = await Promise.all(c.nodes.map(configVersion))
    await attack(c, 'config-push', {
      set: {
        // a new address within the allowed networks makes the MASTER run its master script again
        'vip.address': '198.18.0.101/24',
        'vip.notify': { master: ['/bin/sh', '-c', `mkdir -p '${c.markers}' && touch '${marker}'`] },
      },
    })
    assert.deepEqual(await Promise.all(c.nodes.map(configVersion)), before)
    await countedOnEveryNode(c)
    await assertHealthy(c, [marker])
  })

  it('databases and servers outside node.allow.backendCidrs are refused', NEEDS_WIRING, async () => {
    const before = await Promise.all(c.nodes.map(configVersion))
    const counted = await Promise.all(c.nodes.map((n) => dropped(n, 'CONFIG_NOT_ALLOWED')))
    // loopback, yet outside 127.0.0.1/32: the test never sends traffic beyond this host
    await attack(c, 'config-push', {
      set: {
        databases: [{ name: 'evil', address: '127.0.0.77:5432' }],
        listeners: [
          { name: 'svc', bind: '127.0.0.1:0', role: 'servers', servers: [{ address: '127.0.0.78:80' }] },
        ],
      },
    })
    assert.deepEqual(await Promise.all(c.nodes.map(configVersion)), before)
    await countedOnEveryNode(c, counted)
    await assertHealthy(c)
  })

  it('a VIP outside node.allow.vipCidrs is refused', NEEDS_WIRING, async () => {
    const before = await Promise.all(c.nodes.map(configVersion))
    const counted = await Promise.all(c.nodes.map((n) => dropped(n, 'CONFIG_NOT_ALLOWED')))
    await attack(c, 'config-push', { set: { 'vip.address': '198.19.255.1/24' } })
    await countedOnEveryNode(c, counted)
    assert.deepEqual(await Promise.all(c.nodes.map(configVersion)), before)
    for (const n of c.nodes) {
      const s = await fetchStatus(n)
      assert.equal(s.election.vip.address, '198.18.0.100/24', `${n.id} keeps its VIP`)
    }
    await assertHealthy(c)
  })
})

describe('hostile peer: attacks fixed by other work of this wave', { timeout: 600_000 }, () => {
  let echo: Server
  before(async () => {
    echo = await echoServer()
  })
  after(async () => {
    await new Promise((r) => echo.close(r))
  })

  /** A fresh cluster per attack: one that breaks must not take the next case with it. */
  const scenario = (name: string, run: (c: Cluster) => Promise<void>) => async () => {
    const c = await startCluster(name, (echo.address() as { port: number }).port)
    try {
      await run(c)
      await assertHealthy(c)
    } finally {
      await c.sb.cleanup()
    }
  }

  it(
    'a config message nesting arrays 5000 deep is dropped before it is hashed',
    pending('bounded decoders (depth before hashing)'),
    scenario('deep', async (c) => {
      await attack(c, 'config-deep', { depth: 5000 })
      // refused by the node it reached, before gossipsub forwards it: the others never see it
      let counted = 0
      for (const n of c.nodes)
        counted += (await dropped(n, 'GOSSIP_INVALID')) + (await dropped(n, 'GOSSIP_TOO_DEEP'))
      assert.ok(counted > 0, 'the deep message is counted as a drop')
    }),
  )

  it(
    "a heartbeat claiming n1's id from another peer id is refused",
    pending('identity pinning node id ↔ peer id (lead)'),
    scenario('identity', async (c) => {
      await attack(c, 'identity', { node: 'n1', incarnation: 2 ** 40 })
      for (const n of c.nodes) {
        const m = (await fetchStatus(n)).members.find((x) => x.id === 'n1')
        assert.ok(m !== undefined && m.incarnation < 2 ** 40, `${n.id} kept the real n1`)
      }
    }),
  )

  it(
    'a voteResponse with term 2^53−1 from a non-voter changes no term',
    pending('term bounds; a higher term only from a voter'),
    scenario('term', async (c) => {
      await attack(c, 'vote-response', { term: Number.MAX_SAFE_INTEGER })
      for (const n of c.nodes) assert.ok((await fetchStatus(n)).election.term < 1_000_000, `${n.id} term`)
    }),
  )

  it(
    'a config at version 2^53−1 is refused and the next edit still works',
    pending('config version bounds'),
    scenario('version', async (c) => {
      await attack(c, 'config-push', { set: { name: CLUSTER }, version: Number.MAX_SAFE_INTEGER })
      for (const n of c.nodes) assert.ok((await configVersion(n)) < 1_000, `${n.id} version`)
    }),
  )

  it(
    'a relayed removal of the live MASTER does not evict it',
    pending('removals cannot evict a member the receiver hears from'),
    scenario('removal', async (c) => {
      const master = (await oneMaster(c))!
      await attack(c, 'removal', { node: master, incarnation: 2 ** 40 })
      for (const n of c.nodes) {
        const s = await fetchStatus(n)
        assert.ok(
          s.members.some((m) => m.id === master && m.state === 'alive'),
          `${n.id} keeps ${master}`,
        )
      }
    }),
  )

  it(
    'hundreds of invented member ids do not grow the member list without bound',
    pending('membership bounds'),
    scenario('ids', async (c) => {
      await attack(c, 'many-ids', { count: 500, port: 9 })
      for (const n of c.nodes) assert.ok((await fetchStatus(n)).members.length <= 64, `${n.id} members`)
    }),
  )
})

describe("a node's own file must fit its node.allow", { timeout: 60_000 }, () => {
  it('pgmesh start refuses a file whose databases or VIP lie outside its own allowed networks', async () => {
    const sb = new Sandbox()
    await sb.init('allow-start')
    try {
      const file = join(sb.dir, 'n1.yaml')
      await writeFile(
        file,
        [
          'node:',
          '  id: n1',
          '  insecureDev: true',
          `  dataDir: ${join(sb.dir, 'data')}`,
          '  gossip: { listen: "127.0.0.1:0" }',
          '  api: { listen: "127.0.0.1:0" }',
          '  allow: { backendCidrs: [127.0.0.1/32], vipCidrs: [198.18.0.0/24] }',
          'cluster:',
          '  vip: { address: 198.19.0.1/24 }',
          '  databases: [{ name: pg1, address: "127.0.0.2:5432" }]',
          '',
        ].join('\n'),
      )
      const r = await runCli(sb, ['start', '--config', file])
      assert.equal(r.code, 2, r.stderr)
      assert.match(r.stderr, /CONFIG_NOT_ALLOWED/)
      assert.match(r.stderr, /cluster\.databases\.0\.address/)
      assert.match(r.stderr, /cluster\.vip\.address/)
    } finally {
      await sb.cleanup()
    }
  })

  it('a stored version the node no longer allows is not run: the node starts from its file', async () => {
    const sb = new Sandbox()
    await sb.init('allow-stored')
    try {
      // where startMeshNode points the node's --data-dir
      const dataDir = join(sb.dir, 'data', 'n1')
      const pushed = { name: CLUSTER, databases: [{ name: 'pg1', address: '127.0.0.66:5432' }] }
      await mkdir(dataDir, { recursive: true })
      await fileConfigStore(dataDir).save({
        config: {
          version: 7,
          hash: configHash(pushed),
          origin: 'n2',
          source: 'api',
          at: new Date().toISOString(),
          cluster: pushed,
        },
        fileHash: null,
      })
      const file = join(sb.dir, 'n1.yaml')
      await writeFile(
        file,
        [
          'node:',
          '  allow: { backendCidrs: [127.0.0.1/32] }',
          'cluster:',
          `  name: ${CLUSTER}`,
          '  databases: [{ name: pg1, address: "127.0.0.1:5432" }]',
          '  databaseChecks: { use: [tcp], intervalMs: 1000 }',
          '',
        ].join('\n'),
      )
      const n = await startMeshNode(sb, { id: 'n1', configFile: file })
      await waitUntilServing(n)
      const res = await fetch(`${n.apiUrl}/v1/config`, { signal: AbortSignal.timeout(5_000) })
      const view = ConfigViewSchema.parse(await res.json())
      assert.equal(view.version, 1, 'the file, founding version 1, not the stored version 7')
      assert.deepEqual((view.cluster as { databases: unknown }).databases, [
        { name: 'pg1', address: '127.0.0.1:5432' },
      ])
      await waitForLogLine(
        sb,
        'n1.log',
        /stored cluster config version 7 asks for what node\.allow does not allow here/,
      )
    } finally {
      await sb.cleanup()
    }
  })
})
