import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { connect, createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { everyoneSees, startMeshNode, type TestNode, writeFastTimingsConfig } from './helpers/mesh-cluster.js'
import { exited, freePort, isRunning, ROOT, runCli, Sandbox, waitFor } from './helpers/processes.js'
import { parseExposition, type Sample, sampleValue } from './helpers/prometheus.js'

async function scrape(node: TestNode): Promise<Sample[]> {
  const res = await fetch(`${node.apiUrl}/metrics`, { signal: AbortSignal.timeout(2000) })
  assert.equal(res.status, 200)
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
  return parseExposition(await res.text()).samples
}

/** Sends `payload` through the proxy, waits for all of it to come back from the echo server, closes. */
async function echoThrough(port: number, payload: Buffer): Promise<void> {
  await new Promise<void>((done, fail) => {
    const s = connect(port, '127.0.0.1')
    const timer = setTimeout(() => {
      s.destroy()
      fail(new Error('echo through the proxy timed out'))
    }, 5000)
    let got = 0
    s.on('error', fail)
    s.on('data', (d: Buffer) => {
      got += d.length
      if (got >= payload.length) s.end()
    })
    s.on('close', () => {
      clearTimeout(timer)
      if (got >= payload.length) done()
      else fail(new Error(`only ${got} of ${payload.length} bytes came back`))
    })
    s.on('connect', () => s.write(payload))
  })
}

describe('metrics: /metrics on 3 processes with a listener and bad gossip', { timeout: 120_000 }, () => {
  const sb = new Sandbox()
  const nodes: TestNode[] = []
  let echo: Server | null = null
  let listenPort = 0
  let secret = ''

  before(async () => {
    await sb.init('metrics')
    secret = join(sb.dir, 'cluster.secret')
    const kg = await runCli(sb, ['keygen', '--out', secret])
    assert.equal(kg.code, 0, kg.stderr)
    const server = createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => undefined)
      s.pipe(s)
    })
    echo = server
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const backendPort = (server.address() as { port: number }).port
    listenPort = await freePort()
    const fast = await writeFastTimingsConfig(sb)
    // n1 alone serves a listener: same cluster settings plus a `servers` listener to the echo backend
    const withListener = join(sb.dir, 'listener.yaml')
    await writeFile(
      withListener,
      [
        (await readFile(fast, 'utf8')).trimEnd(),
        '  listeners:',
        '    - name: echo',
        `      bind: "127.0.0.1:${listenPort}"`,
        '      role: servers',
        '      servers:',
        `        - { address: "127.0.0.1:${backendPort}" }`,
        '',
      ].join('\n'),
    )
    // n2 and n3 receive n1's cluster config (the listener with it) and serve it on ports of their own
    const joiners = join(sb.dir, 'joiners.yaml')
    await writeFile(
      joiners,
      `node:\n  listenerBinds: { echo: "127.0.0.1:0" }\n${await readFile(fast, 'utf8')}`,
    )
    const n1 = await startMeshNode(sb, {
      id: 'n1',
      priority: 110,
      secretFile: secret,
      configFile: withListener,
      logLevel: 'info',
    })
    nodes.push(n1)
    for (const [id, priority] of [
      ['n2', 105],
      ['n3', 100],
    ] as const) {
      nodes.push(
        await startMeshNode(sb, {
          id,
          priority,
          secretFile: secret,
          configFile: joiners,
          join: [n1.gossipPort],
          logLevel: 'info',
        }),
      )
    }
    const alive = { n1: 'alive', n2: 'alive', n3: 'alive' } as const
    await waitFor('3 alive members on every node', 30_000, everyoneSees(nodes, alive))
  })

  after(async () => {
    await sb.cleanup()
    const server = echo
    if (server !== null) await new Promise((r) => server.close(r))
  })

  it('every node counts 3 alive members and exactly one reports master=1', async () => {
    const masters = await waitFor('exactly one MASTER by the metrics', 30_000, async () => {
      const all = await Promise.all(nodes.map(scrape))
      if (all.some((s) => sampleValue(s, 'pgmesh_members', { state: 'alive' }) !== 3)) return undefined
      // a node that just joined knows the MASTER's term a heartbeat later
      if (all.some((s) => sampleValue(s, 'pgmesh_election_term') < 1)) return undefined
      const m = nodes.filter((_, i) => sampleValue(all[i]!, 'pgmesh_master') === 1).map((n) => n.id)
      return m.length === 1 ? { m, all } : undefined
    })
    for (const s of masters.all) {
      assert.equal(sampleValue(s, 'pgmesh_members', { state: 'dead' }), 0)
      assert.ok(sampleValue(s, 'pgmesh_election_term') >= 1)
      assert.ok(sampleValue(s, 'pgmesh_gossip_messages_total', { direction: 'in' }) > 0)
      assert.ok(sampleValue(s, 'process_resident_memory_bytes') > 0)
    }
    const i = nodes.findIndex((n) => n.id === masters.m[0])
    const ms = masters.all[i]!
    assert.ok(sampleValue(ms, 'pgmesh_master_changes_total') >= 1)
    assert.ok(sampleValue(ms, 'pgmesh_vip_acquires_total', { result: 'ok' }) >= 1)
    assert.equal(sampleValue(ms, 'pgmesh_vip_held'), 1)
  })

  it('connections through the listener raise its connection and byte counters', async () => {
    const n1 = nodes[0]!
    const before = await scrape(n1)
    const total = (s: Sample[]) => sampleValue(s, 'pgmesh_listener_connections_total', { listener: 'echo' })
    const bytes = (s: Sample[], direction: string) =>
      sampleValue(s, 'pgmesh_listener_bytes_total', { listener: 'echo', direction })
    const payload = randomBytes(50_000)
    const sessions = 3
    for (let i = 0; i < sessions; i++) await echoThrough(listenPort, payload)
    // bytes are counted when a session ends, which the node sees a moment after the client
    const now = await waitFor('the counters to include the ended sessions', 10_000, async () => {
      const s = await scrape(n1)
      return total(s) - total(before) >= sessions &&
        bytes(s, 'in') - bytes(before, 'in') >= sessions * payload.length &&
        sampleValue(s, 'pgmesh_listener_connections', { listener: 'echo' }) === 0
        ? s
        : undefined
    })
    assert.ok(bytes(now, 'out') - bytes(before, 'out') >= sessions * payload.length)
    const backend = now.find((x) => x.name === 'pgmesh_backend_connections_total')
    assert.ok(backend !== undefined && backend.value >= sessions, 'per-backend sessions counted')
    assert.equal(
      sampleValue(now, 'pgmesh_listener_connection_errors_total', { listener: 'echo', reason: 'refused' }),
      0,
    )
  })

  it('malformed gossip from a peer holding the secret shows in the dropped-by-reason counter', async () => {
    const n1 = nodes[0]!
    const garbage = sb.spawnNode(
      [
        '--conditions=source',
        '--import',
        'tsx',
        join(ROOT, 'test', 'helpers', 'garbage-peer.ts'),
        secret,
        String(n1.gossipPort),
        'e2e',
      ],
      'garbage.log',
      ROOT, // so --import tsx resolves from the repo's node_modules
    )
    assert.equal(await exited(garbage, 30_000), 0)
    const dropped = await waitFor('drops by reason on n1', 10_000, async () => {
      const s = (await scrape(n1)).filter((x) => x.name === 'pgmesh_gossip_dropped_total')
      const by = Object.fromEntries(s.map((x) => [x.labels.reason ?? '', x.value]))
      return (by.GOSSIP_WRONG_CLUSTER ?? 0) > 0 && (by.GOSSIP_PEER_MISMATCH ?? 0) > 0 ? by : undefined
    })
    assert.ok((dropped.GOSSIP_UNSUPPORTED_VERSION ?? 0) > 0, JSON.stringify(dropped))
    for (const n of nodes) assert.ok(isRunning(n.proc), `${n.id} exited`)
  })
})
