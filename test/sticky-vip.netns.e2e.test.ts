import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { canRunNetns, NetnsLab } from './helpers/netns-lab.js'
import { freePort, ROOT, Sandbox, waitFor } from './helpers/processes.js'
import { NODE_NAMES, VipLab } from './helpers/vip-lab.js'

/** issue 16: a sticky client keeps its replica across a VIP move */
const SUBNET = '198.18.9'
const VIP_ADDR = `${SUBNET}.100`
const PROXY_PORT = 6000
const REPLICAS = ['r1', 'r2', 'r3']

const skip = canRunNetns()

describe('sticky source across a VIP move (netns): the new MASTER sends the client to the same replica', {
  skip: skip ?? false,
  timeout: 240_000,
}, () => {
  const sb = new Sandbox()
  const lab = new NetnsLab(SUBNET)
  let vl: VipLab
  let seq = 0

  /** `count` connections from namespace `from` to the VIP listener, one at a time: who answered */
  async function connectFrom(from: string, count: number): Promise<(string | null)[]> {
    const log = `connect-${from}-${seq++}.log`
    const p = sb.spawnCommand(
      'ip',
      lab.inside(from, [
        process.execPath,
        '--import',
        'tsx',
        join(ROOT, 'test', 'helpers', 'netns', 'connect-loop.ts'),
        VIP_ADDR,
        String(PROXY_PORT),
        '50',
        String(count),
        '3000',
      ]),
      log,
      ROOT,
    )
    await waitFor(
      `${from}'s connections to end`,
      60_000,
      async () => (p.exitCode !== null ? true : undefined),
      100,
    )
    const text = await readFile(join(sb.dir, log), 'utf8')
    return text
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => (JSON.parse(l) as { node: string | null }).node)
  }

  before(async () => {
    await sb.init('sticky-vip')
    await lab.create([...NODE_NAMES, 'c0', 'c1', 'c2'])
    const ports: number[] = []
    for (const r of REPLICAS) {
      const port = await freePort()
      ports.push(port)
      sb.spawnCommand(
        process.execPath,
        ['--import', 'tsx', join(ROOT, 'test', 'helpers', 'netns', 'serve-id.ts'), r, String(port)],
        `${r}.log`,
        ROOT,
      )
    }
    vl = new VipLab(sb, lab, {
      vip: `${VIP_ADDR}/24`,
      cluster: [
        '  election: { leaseMs: 3000, heartbeatIntervalMs: 200, electionTimeoutMinMs: 3200, electionTimeoutMaxMs: 4000, statusIntervalMs: 500 }',
        '  listeners:',
        '    - name: sticky',
        `      bind: "0.0.0.0:${PROXY_PORT}"`,
        '      role: servers',
        '      balance: roundrobin',
        `      servers: [${ports.map((p) => `{ address: "${lab.gateway}:${p}" }`).join(', ')}]`,
        '      stick: { on: source, ttlMs: 600000 }',
      ],
    })
    await vl.init()
    for (const n of NODE_NAMES) vl.startService(n)
    for (const n of NODE_NAMES) vl.startNode(n)
  })

  after(async () => {
    await sb.cleanup()
    await lab.destroy()
  })

  it('c1 sticks to B on n1, the entry reaches n2, and after n1 is killed n2 sends c1 to B', async () => {
    await waitFor('n1 alone to hold the VIP, seen by every node', 60_000, async () => {
      if ((await vl.holders()).join() !== 'n1') return undefined
      for (const n of NODE_NAMES) if ((await vl.status(n)).election.master !== 'n1') return undefined
      return true
    })
    // c0 takes n1's first round-robin pick, so c1's backend B is not the one a fresh balance picks first
    const [a] = await connectFrom('c0', 1)
    assert.ok(a && REPLICAS.includes(a), `c0 answered by ${a}`)
    const c1 = await connectFrom('c1', 5)
    const b = c1[0]!
    assert.ok(REPLICAS.includes(b), `c1 answered by ${b}`)
    assert.notEqual(b, a, 'round robin gives c1 another replica than c0')
    assert.deepEqual(c1, Array(5).fill(b), 'c1 sticks to B on n1')
    const c1Addr = lab.host('c1').address
    await waitFor("n2 to list c1's stick entry", 20_000, async () => {
      const st = (await vl.status('n2')) as unknown as {
        listeners?: {
          name?: string
          policy?: { stick?: { recent?: { source: string; backend: string }[] } | null }
        }[]
      }
      const recent = st.listeners?.flatMap((l) => l.policy?.stick?.recent ?? []) ?? []
      return recent.some((e) => e.source === c1Addr) ? true : undefined
    })
    vl.nodes.get('n1')?.kill('SIGKILL')
    await waitFor(
      'n2 to hold the VIP',
      30_000,
      async () => ((await vl.holders()).join() === 'n2' ? true : undefined),
      100,
    )
    // n2 has balanced nothing yet: without the shared entry its round robin would send c1 to c0's replica
    const moved = await waitFor('c1 to be served through n2', 30_000, async () => {
      const r = await connectFrom('c1', 1)
      return r[0] ? r[0] : undefined
    })
    assert.equal(moved, b, `c1 back on its replica ${b} after the VIP move (c0's was ${a})`)
    assert.deepEqual(await connectFrom('c1', 4), Array(4).fill(b), 'c1 keeps B on n2')
    const fresh = await connectFrom('c2', 1)
    assert.ok(fresh[0] && REPLICAS.includes(fresh[0]), `c2 answered by ${fresh[0]}`)
  })
})
