/**
 * The listener policy in a real pgmesh process: read from the cluster config, applied live on a
 * reload (SIGHUP) without touching an established session, and visible in `/v1/status` (through
 * its schema) and `/metrics`.
 */
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fetchStatus, startMeshNode, type TestNode } from './helpers/mesh-cluster.js'
import { freePort, Sandbox, waitFor } from './helpers/processes.js'

const sb = new Sandbox()
let echo: Server
let echoPort = 0
let node: TestNode
let port = 0
let config = ''

const yaml = (deny: string[]) =>
  [
    'cluster:',
    '  listeners:',
    '    - name: guarded',
    `      bind: "127.0.0.1:${port}"`,
    '      role: servers',
    `      servers: [{ address: "127.0.0.1:${echoPort}" }]`,
    `      deny: [${deny.map((d) => `"${d}"`).join(', ')}]`,
    '      limits: { maxConnPerSource: 20 }',
    '',
  ].join('\n')

/** Connects from `from`; resolves with the socket once the echo answered, or with the failure. */
function session(from: string): Promise<{ ok: true; sock: Socket } | { ok: false; why: string }> {
  return new Promise((done) => {
    const sock = connect({ host: '127.0.0.1', port, localAddress: from })
    const timer = setTimeout(() => {
      sock.destroy()
      done({ ok: false, why: 'timeout' })
    }, 5_000)
    sock.on('connect', () => sock.write('ping\n'))
    sock.on('data', (d) => {
      if (!d.toString().includes('ping')) return
      clearTimeout(timer)
      done({ ok: true, sock })
    })
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      done({ ok: false, why: e.code ?? e.message })
    })
    sock.on('close', () => {
      clearTimeout(timer)
      done({ ok: false, why: 'closed' })
    })
  })
}

async function served(from: string): Promise<boolean> {
  const r = await session(from)
  if (r.ok) r.sock.destroy()
  return r.ok
}

describe('listener policy in a running node', { timeout: 60_000 }, () => {
  before(async () => {
    await sb.init('policy-live')
    echo = createServer((s) => {
      s.on('error', () => undefined)
      s.pipe(s)
    })
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r))
    echoPort = (echo.address() as { port: number }).port
    port = await freePort()
    config = join(sb.dir, 'pgmesh.yaml')
    await writeFile(config, yaml(['127.0.0.3']))
    node = await startMeshNode(sb, { id: 'p1', configFile: config })
    await waitFor('the listener', 20_000, async () =>
      (await fetchStatus(node)).listeners.some((l) => l.name === 'guarded') ? true : undefined,
    )
  })

  after(async () => {
    await sb.cleanup()
    await new Promise((r) => echo.close(r))
  })

  it('denies from the config, changes live on a reload, keeps an established session', async () => {
    assert.equal(await served('127.0.0.2'), true)
    assert.equal(await served('127.0.0.3'), false)
    const long = await session('127.0.0.2')
    assert.ok(long.ok)

    await writeFile(config, yaml(['127.0.0.2']))
    node.proc.kill('SIGHUP')
    await waitFor('the new deny list', 10_000, async () => ((await served('127.0.0.3')) ? true : undefined))
    assert.equal(await served('127.0.0.2'), false, 'a new connection from .2 is refused now')

    // the session opened before the reload still works both ways
    const echoed = new Promise<boolean>((done) => {
      long.sock.on('data', (d) => d.toString().includes('still') && done(true))
      setTimeout(() => done(false), 5_000)
    })
    long.sock.write('still here\n')
    assert.equal(await echoed, true)
    long.sock.destroy()

    const l = (await fetchStatus(node)).listeners.find((x) => x.name === 'guarded')
    assert.ok(l?.policy !== undefined)
    assert.ok(l.policy.refused.denied >= 2)
    assert.deepEqual(
      l.policy.rules.map((r) => [r.list, r.cidr]),
      [['deny', '127.0.0.2']],
    )
    const metrics = await (await fetch(`${node.apiUrl}/metrics`)).text()
    assert.match(metrics, /pgmesh_listener_policy_refused_total\{listener="guarded",reason="denied"\} [1-9]/)
  })
})
