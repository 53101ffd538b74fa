import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { ClusterStatusSchema } from '@pgmesh/protocol'
import pg from 'pg'
import { counterName } from '../mesh-node/src/fastpath/nft-rules.js'
import { restartMeshNode, startMeshNode, type TestNode } from './helpers/mesh-cluster.js'
import { NetnsLab } from './helpers/netns-lab.js'
import { freePort, Sandbox, waitFor } from './helpers/processes.js'
import { TESTBED_PASSWORD, Testbed, whoAnswers } from './helpers/testbed.js'

const run = promisify(execFile)
const skip = process.getuid?.() === 0 ? false : 'the kernel path and the Patroni testbed need root'

async function nftTables(): Promise<string> {
  return (await run('nft', ['list', 'tables'])).stdout
}

/**
 * `dataPath: kernel` listeners in front of the real Patroni testbed: nftables forwards new
 * connections to the backend pgmesh chose; uncertain routes fall back to the Node listener.
 */
describe('the kernel fast path in front of a real Patroni cluster', { skip, timeout: 360_000 }, () => {
  const sb = new Sandbox()
  const tbDir = join(tmpdir(), `pgmesh-tb-fast-${randomBytes(4).toString('hex')}`)
  // a subnet of its own: the VIP labs use 198.18.0.0/24
  const lab = new NetnsLab('198.19.7')
  let tb: Testbed
  let node: TestNode
  let writePort = 0
  let readPort = 0
  let remotePort = 0
  const pgPortOf = (name: string) => tb.node(name).pgPort
  const status = async () => ClusterStatusSchema.parse(await (await fetch(`${node.apiUrl}/v1/status`)).json())
  let tableName = ''
  const table = async () => {
    tableName = (await status()).fastPath?.table ?? tableName
    return tableName
  }
  /** new connections the kernel forwarded for a listener (its named counter, kept across updates) */
  const kernelCount = async (listener: string) => {
    const listed = (await run('nft', ['list', 'counter', 'ip', await table(), counterName(listener)])).stdout
    return Number(/packets (\d+)/.exec(listed)?.[1] ?? Number.NaN)
  }

  before(async () => {
    await sb.init('fastpath')
    tb = await Testbed.up(tbDir)
    await lab.create(['client'])
    // DNAT from the lab to the testbed on loopback: the bridge must accept 127.0.0.0/8 destinations
    await run('sysctl', ['-qw', `net.ipv4.conf.${lab.bridge}.route_localnet=1`])
    const pw = join(sb.dir, 'pgpass')
    await writeFile(pw, `${TESTBED_PASSWORD}\n`, { mode: 0o600 })
    writePort = await freePort()
    readPort = await freePort()
    remotePort = await freePort()
    const cfg = join(sb.dir, 'k1.yaml')
    await writeFile(
      cfg,
      [
        'cluster:',
        '  name: fast',
        '  databaseChecks:',
        `    passwordFile: ${pw}`,
        '    intervalMs: 100',
        '    timeoutMs: 500',
        '  databases:',
        ...tb.nodes.map(
          (n) => `    - { name: ${n.name}, address: "127.0.0.1:${n.pgPort}", patroniUrl: "${n.apiUrl}" }`,
        ),
        '  listeners:',
        `    - { name: write, bind: "127.0.0.1:${writePort}", role: primary, dataPath: kernel, queueTimeoutMs: 20000 }`,
        `    - { name: read, bind: "127.0.0.1:${readPort}", role: replica, dataPath: kernel }`,
        `    - { name: remote, bind: "${lab.gateway}:${remotePort}", role: primary, dataPath: kernel }`,
        '',
      ].join('\n'),
    )
    node = await startMeshNode(sb, { id: 'k1', configFile: cfg, logLevel: 'info' })
  })

  after(async () => {
    await sb.cleanup()
    await lab.destroy()
    if (tb !== undefined) await tb.down()
    // a node killed by the runner leaves its table: the test removes what its node made
    if (tableName !== '') await run('nft', ['delete', 'table', 'ip', tableName]).catch(() => undefined)
  })

  it('writes land on the leader and reads on the replicas, forwarded by the kernel', async () => {
    const leader = await tb.leader()
    await waitFor('the kernel routes', 30_000, async () => {
      const s = await status().catch(() => null)
      const paths = s?.fastPath?.listeners.map((l) => `${l.name}:${l.path}`).sort()
      // a replica still in its rise checks is not routed to yet (reads fall back to the primary)
      const readTargets = s?.fastPath?.listeners.find((l) => l.name === 'read')?.targets.length
      return paths?.join() === 'read:kernel,remote:kernel,write:kernel' && readTargets === 2
        ? true
        : undefined
    })
    for (let i = 0; i < 3; i++) {
      const w = await whoAnswers(writePort)
      assert.deepEqual(w, { port: pgPortOf(leader), recovery: false })
    }
    const listed = (await run('nft', ['list', 'table', 'ip', await table()])).stdout
    assert.match(
      listed,
      new RegExp(
        `tcp dport ${writePort} counter name "new_\\w+" dnat (ip )?to 127\\.0\\.0\\.1:${pgPortOf(leader)}`,
      ),
    )
    assert.ok((await kernelCount('write')) >= 3, 'the kernel counted the write connections')
    const seen = new Set<number>()
    for (let i = 0; i < 6; i++) {
      const r = await whoAnswers(readPort)
      assert.equal(r.recovery, true)
      seen.add(r.port)
    }
    assert.equal(seen.size, 2, 'round robin over both replicas in the kernel')
    // the relay in Node saw none of these sessions
    const s = await status()
    assert.equal(
      s.listeners.find((l) => l.name === 'write')?.total,
      0,
      'no write session went through the Node relay',
    )
  })

  it('a remote client (another network namespace) arriving on the listener address is forwarded too', async () => {
    const leader = await tb.leader()
    const env = { ...process.env, PGPASSWORD: TESTBED_PASSWORD, PGCONNECT_TIMEOUT: '5' }
    const { stdout } = await run(
      'ip',
      [
        'netns',
        'exec',
        lab.host('client').netns,
        'psql',
        '-h',
        lab.gateway,
        '-p',
        String(remotePort),
        '-U',
        'postgres',
        '-Atc',
        'SELECT inet_server_port(), pg_is_in_recovery()',
        'postgres',
      ],
      { env, timeout: 15_000 },
    )
    assert.equal(stdout.trim(), `${pgPortOf(leader)}|f`)
  })

  it('switchover during a write loop: no write reaches a replica; once pgmesh sees the demotion, new connections wait in the Node queue', async () => {
    const from = await tb.leader()
    const to = tb.nodes.find((n) => n.name !== from)!.name
    const held = new pg.Client({
      host: '127.0.0.1',
      port: writePort,
      user: 'postgres',
      password: TESTBED_PASSWORD,
      database: 'postgres',
    })
    let heldClosed = false
    held.on('error', () => undefined)
    held.on('end', () => {
      heldClosed = true
    })
    await held.connect()
    const countBefore = await kernelCount('write')
    let stop = false
    const wrongTurns: number[] = []
    const failures: string[] = []
    let served = 0
    const loop = (async () => {
      for (let i = 0; i < 2_000 && !stop; i++) {
        try {
          const r = await whoAnswers(writePort)
          if (r.recovery) wrongTurns.push(r.port)
          else served++
        } catch (e) {
          failures.push((e as Error).message)
        }
        await sleep(25)
      }
    })()
    await tb.switchover(from, to)
    await waitFor(
      'writes on the new leader through the kernel again',
      60_000,
      async () => {
        const s = await status().catch(() => null)
        const w = s?.fastPath?.listeners.find((l) => l.name === 'write')
        if (w?.path !== 'kernel') return undefined
        const r = await whoAnswers(writePort).catch(() => null)
        return r !== null && r.port === pgPortOf(to) && !r.recovery ? true : undefined
      },
      200,
    )
    // a kernel-path session is cut by conntrack: it learns on its next statement
    await held.query('SELECT 1').catch(() => undefined)
    await waitFor('the session held to the old leader to be closed', 30_000, async () =>
      heldClosed ? true : undefined,
    )
    stop = true
    await loop
    process.stdout.write(
      `# switchover on the kernel path: ${served} writes served, ${failures.length} failed (${[...new Set(failures)].join('; ')})\n`,
    )
    assert.deepEqual(wrongTurns, [], 'a write connection reached a server in recovery')
    assert.ok(served > 0)
    const s = await status()
    assert.ok((s.fastPath?.updates ?? 0) >= 2, 'the rules changed for the switch and back')
    // a rule update refills the chains: the listener's counter keeps counting, it never restarts
    assert.ok((await kernelCount('write')) > countBefore, 'the write counter survived the rule updates')
  })

  it('kill -9 of the leader: writes resume on the promoted node', async () => {
    const old = await tb.leader()
    await tb.script(['kill', old, tbDir])
    const r = await waitFor(
      'a write after the promotion',
      90_000,
      async () => {
        const x = await whoAnswers(writePort).catch(() => null)
        return x !== null && !x.recovery && x.port !== pgPortOf(old) ? x : undefined
      },
      250,
    )
    assert.equal(r.recovery, false)
  })

  it('the table goes with the node: removed at a stop, replaced after kill -9 and a restart', async () => {
    const t = await table()
    assert.match(await nftTables(), new RegExp(`table ip ${t}\\b`))
    node.proc.kill('SIGKILL')
    await waitFor('k1 to die', 10_000, async () => (node.proc.signalCode !== null ? true : undefined))
    assert.match(await nftTables(), new RegExp(`table ip ${t}\\b`), 'a killed node cannot remove it')
    restartMeshNode(sb, node)
    await waitFor('k1 to route writes on the kernel path again', 60_000, async () => {
      const s = await status().catch(() => null)
      return s?.fastPath?.listeners.find((l) => l.name === 'write')?.path === 'kernel' ? true : undefined
    })
    const listed = (await run('nft', ['list', 'table', 'ip', t])).stdout
    assert.equal(
      listed.match(/comment "write"/g)?.length,
      2,
      'one set of rules: the stale table was replaced',
    )
    node.proc.kill('SIGTERM')
    await waitFor('k1 to stop', 30_000, async () => (node.proc.exitCode !== null ? true : undefined))
    assert.doesNotMatch(await nftTables(), new RegExp(`table ip ${t}\\b`), 'a stopped node removes its table')
  })
})
