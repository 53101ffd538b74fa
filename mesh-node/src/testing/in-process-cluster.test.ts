import assert from 'node:assert/strict'
import { type AddressInfo, connect, createServer, type Server } from 'node:net'
import { after, describe, it } from 'node:test'
import { InProcessCluster } from './in-process-cluster.js'

/**
 * Three complete MeshNodes — bus, directory, membership, heartbeats, mesh repair, election, routing,
 * config — in one process on a memory network and a fake clock: the joining code, tested without
 * spawning anything.
 */
describe('three MeshNodes in one process', { timeout: 20_000 }, () => {
  const c = new InProcessCluster()
  after(() => c.stopAll())

  it('join through the seed, list each other, and agree on the highest-priority MASTER', async () => {
    const started = performance.now()
    await c.add({ id: 'n1', priority: 110 })
    await c.add({ id: 'n2', priority: 105, join: ['n1'] })
    await c.add({ id: 'n3', priority: 100, join: ['n1'] })
    for (const id of ['n1', 'n2', 'n3']) await c.start(id)
    const allListed = () =>
      c.running().every((n) => n.node.view.members().filter((m) => m.state === 'alive').length === 3)
    assert.ok(await c.clock.until(allListed, 5_000), 'every node lists all three as alive')
    assert.ok(
      await c.clock.until(() => c.agreedMaster() === 'n1', 5_000),
      `MASTER n1 agreed (now ${c.agreedMaster()})`,
    )
    // the seed founded the cluster alone; as MASTER it adds the joiners to the voters
    const voters = () =>
      c.running().every((n) => {
        const v = n.node.view.electionView().voters
        return v?.voters.length === 3 && v.prev === null
      })
    assert.ok(await c.clock.until(voters, 5_000), 'all three are voters (the joint change committed)')
    const n2 = () => c.get('n2').node.view.status()
    assert.ok(
      await c.clock.until(() => n2().election.vipHolders.join() === 'n1', 1_000),
      'n2 sees n1 holding the VIP',
    )
    // n2 and n3 met only through the seed: they dialled each other from the heartbeats (no star)
    assert.equal(n2().gossip.connectedPeers, 2, 'n2 dialled n3 from its heartbeat')
    assert.ok(performance.now() - started < 5_000, 'no real waiting: the fake clock drives every timer')
  })

  it('move the MASTER to the next priority when it stops, within the lease', async () => {
    const stoppedAt = c.clock.mono()
    await c.stop('n1')
    assert.ok(
      await c.clock.until(() => c.agreedMaster() === 'n2', 3_000),
      `MASTER moved to n2 (now ${c.agreedMaster()}: ${JSON.stringify(c.running().map((n) => [n.id, n.node.view.master(), n.node.view.electionView().voters]))})`,
    )
    assert.ok(
      c.clock.mono() - stoppedAt < 1_000,
      `moved ${c.clock.mono() - stoppedAt} ms (virtual) after the stop`,
    )
    const n3 = c.get('n3').node.view.members()
    assert.equal(n3.find((m) => m.id === 'n1')?.state, 'left', 'the graceful leave marked n1 left at once')
    await c.clock.advance(200)
    const timeline = await c.get('n3').node.api.events?.()
    const masters = timeline?.events
      .filter((e) => e.kind === 'master')
      .map((e) => (e as { to: string | null }).to)
    assert.deepEqual(
      masters?.slice(-2),
      ['n1', 'n2'],
      `the node's timeline shows the MASTER change: ${JSON.stringify(masters)}`,
    )
  })

  it('apply a config edit on every running node', async () => {
    const api = c.get('n2').node.api
    const before = c.get('n2').node.view.config()
    assert.ok(before !== undefined)
    const r = await api.putConfig?.({
      cluster: { name: 'inproc', membership: { heartbeatIntervalMs: 400 } },
      baseVersion: before.version,
    })
    assert.ok(r?.ok, `the edit was accepted: ${JSON.stringify(r)}`)
    const version = r.value.version
    const applied = () =>
      c.running().every((n) => {
        const s = n.node.view.status().config
        return s?.version === version && s.applied === version && s.applyError === undefined
      })
    assert.ok(await c.clock.until(applied, 3_000), 'every running node runs the new version')
    assert.equal(c.agreedMaster(), 'n2', 'the edit did not disturb the MASTER')
  })

  it('stop cleanly: no node leaves a timer behind', async () => {
    await c.stopAll()
    assert.equal(c.clock.pending(), 0, 'every timer was cancelled')
  })
})

describe('a peer holding the secret cannot take over a member’s identity', { timeout: 20_000 }, () => {
  const c = new InProcessCluster()
  after(() => c.stopAll())

  it('a second node claiming n2 is refused and counted; the cluster keeps its MASTER', async () => {
    await c.add({ id: 'n1', priority: 110 })
    await c.add({ id: 'n2', priority: 105, join: ['n1'] })
    await c.add({ id: 'n3', priority: 100, join: ['n1'] })
    for (const id of ['n1', 'n2', 'n3']) await c.start(id)
    assert.ok(await c.clock.until(() => c.agreedMaster() === 'n1', 5_000), 'MASTER n1')
    // same id, its own key, a huge incarnation: before pinning its heartbeats rebound n2
    await c.add({ key: 'impostor', id: 'n2', priority: 200, join: ['n1'], incarnation: 2 ** 40 })
    await c.start('impostor')
    await c.clock.advance(2_000)
    const n1 = c.get('n1').node.view
    const n2 = n1.members().find((m) => m.id === 'n2')
    assert.equal(n2?.state, 'alive', 'the real n2 is still alive')
    assert.equal(n2?.priority, 105, 'n1 still hears the real n2, not the impostor')
    assert.ok((n1.status().gossip.dropped.GOSSIP_ID_CLAIMED ?? 0) > 0, 'the claims are counted')
    const masters = ['n1', 'n2', 'n3'].filter((k) => c.get(k).node.view.master().master)
    assert.deepEqual(masters, ['n1'], 'still exactly one MASTER, the same')
    assert.equal(c.get('impostor').node.view.master().master, false, 'the impostor never became MASTER')
  })
})

describe('a config version a node cannot apply leaves it on the previous one, and says so', {
  timeout: 20_000,
}, () => {
  const c = new InProcessCluster()
  let busy: Server | null = null
  after(async () => {
    await c.stopAll()
    busy?.close()
  })

  it('an unreadable password file: refused by routing, reported, the previous version kept', async () => {
    await c.add({ id: 'n1', priority: 110 })
    await c.add({ id: 'n2', priority: 105, join: ['n1'] })
    for (const id of ['n1', 'n2']) await c.start(id)
    assert.ok(await c.clock.until(() => c.agreedMaster() === 'n1', 5_000), 'MASTER n1')
    const api = c.get('n1').node.api
    const base = c.get('n1').node.view.config().version
    const r = await api.putConfig?.({
      cluster: {
        name: 'inproc',
        databases: [{ name: 'db1', address: '127.0.0.1:1' }],
        databaseChecks: { use: ['postgres'], passwordFile: '/nonexistent/pgmesh-password' },
      },
      baseVersion: base,
    })
    assert.ok(r?.ok, 'the cluster adopts the version (another node might read the file)')
    const refused = () =>
      c.running().every((n) => {
        const s = n.node.view.status().config
        return s?.version === r.value.version && s.applyError?.part === 'routing' && s.applied === base
      })
    assert.ok(await c.clock.until(refused, 3_000), JSON.stringify(c.get('n2').node.view.status().config))
    const view = c.get('n2').node.view.config()
    assert.match(view.applyError?.message ?? '', /pgmesh-password/)
    assert.equal(
      c.get('n2').node.view.backends().databases.length,
      0,
      'n2 still routes by the previous version',
    )
    assert.equal(c.agreedMaster(), 'n1', 'the MASTER is undisturbed')
  })

  it('a listener port in use: refused by the proxy, the next working version applies', async () => {
    busy = createServer()
    await new Promise<void>((done) => busy!.listen(0, '127.0.0.1', done))
    const port = (busy.address() as AddressInfo).port
    const api = c.get('n1').node.api
    const base = c.get('n1').node.view.config().version
    const servers = [{ address: '127.0.0.1:1' }]
    const bad = await api.putConfig?.({
      cluster: {
        name: 'inproc',
        listeners: [{ name: 'l1', bind: `127.0.0.1:${port}`, role: 'servers', servers }],
      },
      baseVersion: base,
    })
    assert.ok(bad?.ok, JSON.stringify(bad))
    const n1 = () => c.get('n1').node.view.status()
    assert.ok(
      await c.clock.until(() => n1().config?.applyError?.part === 'proxy', 3_000),
      JSON.stringify(n1().config),
    )
    assert.deepEqual(n1().listeners, [], 'nothing of the refused version keeps running')
    const good = await api.putConfig?.({
      cluster: { name: 'inproc', listeners: [{ name: 'l1', bind: '127.0.0.1:0', role: 'servers', servers }] },
      baseVersion: bad.value.version,
    })
    assert.ok(good?.ok)
    const applied = () => n1().config?.applied === good.value.version && n1().config?.applyError === undefined
    assert.ok(await c.clock.until(applied, 3_000), JSON.stringify(n1().config))
    assert.equal(n1().listeners.length, 1)
  })
})

describe('traffic policy is the mesh’s: a source over its rate through one node is limited on the others', {
  timeout: 20_000,
}, () => {
  const c = new InProcessCluster()
  const echo = createServer((s) => s.end('hi'))
  after(async () => {
    await c.stopAll()
    echo.close()
  })

  /** One connection from 127.0.0.2; true when the backend's answer arrives, false on a refusal. */
  const attempt = (port: number) =>
    new Promise<boolean>((done) => {
      const s = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' })
      let got = ''
      s.on('data', (d) => {
        got += d.toString()
      })
      s.on('error', () => done(false))
      s.on('close', () => done(got === 'hi'))
    })

  it('5 connections through n1 use up the rate; n2 refuses the sixth within a heartbeat', async () => {
    await new Promise<void>((done) => echo.listen(0, '127.0.0.1', done))
    const backend = (echo.address() as AddressInfo).port
    const ports = [await freeLocalPort(), await freeLocalPort()]
    // one cluster config (it is gossiped), each node's own bind address
    const cluster = {
      listeners: [
        {
          name: 'svc',
          bind: `127.0.0.1:${ports[0]}`,
          role: 'servers' as const,
          servers: [{ address: `127.0.0.1:${backend}` }],
          limits: { ratePerSource: 1, burst: 5 },
        },
      ],
    }
    await c.add({ id: 'n1', priority: 110, cluster, listenerBinds: { svc: `127.0.0.1:${ports[0]}` } })
    await c.add({
      id: 'n2',
      priority: 105,
      join: ['n1'],
      cluster,
      listenerBinds: { svc: `127.0.0.1:${ports[1]}` },
    })
    for (const id of ['n1', 'n2']) await c.start(id)
    assert.ok(await c.clock.until(() => c.agreedMaster() === 'n1', 5_000))
    // a fresh source may burst 5 on either node; virtual time stands still between attempts
    const onN2Before = await attempt(ports[1]!)
    assert.equal(onN2Before, true, 'n2 serves the source before it used up its rate')
    for (let i = 0; i < 4; i++) assert.equal(await attempt(ports[0]!), true, `connection ${i + 1} through n1`)
    await c.clock.advance(600)
    assert.equal(await attempt(ports[1]!), false, 'n2 refuses the source that used up its rate through n1')
    const policy = c
      .get('n2')
      .node.view.status()
      .listeners.find((l) => l.name === 'svc')
    assert.ok(policy !== undefined)
  })
})

async function freeLocalPort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((done) => s.listen(0, '127.0.0.1', done))
  const port = (s.address() as AddressInfo).port
  await new Promise((done) => s.close(done))
  return port
}

describe('a config whose database checks cannot start does not stop the node from starting', {
  timeout: 20_000,
}, () => {
  const c = new InProcessCluster()
  after(() => c.stopAll())

  it('starts, joins the election, and says in /ready why it does not route', async () => {
    await c.add({
      id: 'n1',
      priority: 110,
      cluster: {
        databases: [{ name: 'db1', address: '127.0.0.1:1' }],
        databaseChecks: { use: ['postgres'], passwordFile: '/nonexistent/pgmesh-password' },
      },
    })
    await c.start('n1')
    assert.ok(
      await c.clock.until(() => c.agreedMaster() === 'n1', 5_000),
      'the node runs and is MASTER alone',
    )
    const ready = c.get('n1').node.view.ready()
    assert.equal(ready.ready, false)
    assert.ok(
      ready.reasons.some((r) => r.startsWith('database checks:') && r.includes('pgmesh-password')),
      JSON.stringify(ready.reasons),
    )
  })
})

describe('a member whose first dial failed is dialled again while it stays alive', {
  timeout: 20_000,
}, () => {
  const c = new InProcessCluster()
  after(() => c.stopAll())

  it('n2 and n3 meet only through the seed at first, then connect directly', async () => {
    await c.add({ id: 'n1', priority: 110 })
    await c.add({ id: 'n2', priority: 105, join: ['n1'] })
    await c.add({ id: 'n3', priority: 100, join: ['n1'] })
    // a busy host: every dial between n2 and n3 fails, the gossip through n1 flows
    c.network.refuseDials(c.address('n2'), c.address('n3'))
    for (const id of ['n1', 'n2', 'n3']) await c.start(id)
    const alive = () =>
      c.running().every((n) => n.node.view.members().filter((m) => m.state === 'alive').length === 3)
    assert.ok(await c.clock.until(alive, 5_000), 'every node lists all three as alive (through n1)')
    const n2Peers = () => c.get('n2').node.view.status().gossip.connectedPeers
    await c.clock.advance(1_000)
    assert.equal(n2Peers(), 1, 'n2 reaches n3 only through n1 while dials fail')
    c.network.allowDials()
    // without a retry nobody dials again: the members stay alive, heard through n1
    assert.ok(
      await c.clock.until(() => n2Peers() === 2, 20_000),
      `n2 dialled n3 again in a repair round (connected to ${n2Peers()})`,
    )
  })
})
