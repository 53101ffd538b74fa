import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startMeshNode, waitUntilServing } from './helpers/mesh-cluster.js'
import { freePort, isRunning, runCli, Sandbox, waitFor } from './helpers/processes.js'

describe('pgmesh CLI as a user meets it', { timeout: 60_000 }, () => {
  const sb = new Sandbox()
  before(() => sb.init('cli'))
  after(() => sb.cleanup())

  it('refuses to start without a cluster secret and says how to make one', async () => {
    const r = await runCli(sb, ['start', '--id', 'n1'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /CONFIG_INVALID/)
    assert.match(r.stderr, /node\.secretFile: .*pgmesh keygen/)
  })

  it('lists every problem of an invalid config file with its path', async () => {
    const file = join(sb.dir, 'bad.yaml')
    await writeFile(
      file,
      'node:\n  id: n1\n  priority: 0\n  insecureDev: true\n  gossip:\n    listen: "localhost"\n  colour: blue\ncluster:\n  membership:\n    deadTimeoutMs: 10\n',
    )
    const r = await runCli(sb, ['start', '--config', file])
    assert.equal(r.code, 2)
    for (const p of [
      'node.priority',
      'node.gossip.listen',
      'node.colour:',
      'cluster.membership.deadTimeoutMs',
    ]) {
      assert.ok(r.stderr.includes(p), `missing ${p} in:\n${r.stderr}`)
    }
  })

  it('reports an unreadable secret file and a busy API port clearly', async () => {
    const r = await runCli(sb, ['start', '--id', 'n1', '--secret-file', join(sb.dir, 'missing.secret')])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /SECRET_MISSING: cannot read the cluster secret file .*missing\.secret/)

    const port = await freePort()
    const squatter = createServer().listen(port, '127.0.0.1')
    try {
      const busy = await runCli(sb, [
        'start',
        '--id',
        'n1',
        '--insecure-dev',
        '--api',
        `127.0.0.1:${port}`,
        '--gossip',
        '127.0.0.1:0',
      ])
      assert.equal(busy.code, 1)
      assert.match(
        busy.stderr,
        new RegExp(`cannot listen for the API on 127\\.0\\.0\\.1:${port}.*EADDRINUSE`),
      )
    } finally {
      squatter.close()
    }
  })

  it('keygen writes a 0600 file and will not overwrite it without --force', async () => {
    const f = join(sb.dir, 'k.secret')
    assert.equal((await runCli(sb, ['keygen', '--out', f])).code, 0)
    const again = await runCli(sb, ['keygen', '--out', f])
    assert.equal(again.code, 1)
    assert.match(again.stderr, /exists; pass --force/)
    assert.equal((await runCli(sb, ['keygen', '--out', f, '--force'])).code, 0)
    const { statSync } = await import('node:fs')
    assert.equal(statSync(f).mode & 0o777, 0o600)
  })

  it('status against a node that is not running fails with the address', async () => {
    const port = await freePort()
    const r = await runCli(sb, ['status', '--api', `127.0.0.1:${port}`])
    assert.equal(r.code, 1)
    assert.match(
      r.stderr,
      new RegExp(`cannot reach the pgmesh API at http://127\\.0\\.0\\.1:${port}: ECONNREFUSED`),
    )
  })

  it('unknown commands print usage and exit 2; version prints the version', async () => {
    const r = await runCli(sb, ['launch'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /unknown command 'launch'[\s\S]*Usage:/)
    for (const args of [['version'], ['--version']]) {
      const v = await runCli(sb, args)
      assert.equal(v.code, 0)
      assert.match(v.stdout, /^pgmesh \d+\.\d+\.\d+\n$/)
    }
    const h = await runCli(sb, ['help', 'start'])
    assert.equal(h.code, 0)
    assert.match(h.stdout, /pgmesh start[\s\S]*--secret-file FILE/)
    const c = await runCli(sb, ['completion', 'bash'])
    assert.equal(c.code, 0)
    assert.match(c.stdout, /complete -o filenames -F _pgmesh pgmesh/)
  })

  it('`prioirty: 5` is refused with a hint at start, on SIGHUP, by config check and by PUT /v1/config', async () => {
    const typo = 'node:\n  prioirty: 5\n'
    const hint = /node\.prioirty: unknown field \(did you mean "priority"\?\)/
    // at start: nothing runs
    const file = join(sb.dir, 'typo.yaml')
    await writeFile(file, typo)
    const start = await runCli(sb, ['start', '--config', file, '--id', 'n1', '--insecure-dev'])
    assert.equal(start.code, 2)
    assert.match(start.stderr, hint)
    // config check, the whole file
    const check = await runCli(sb, ['config', 'check', file])
    assert.equal(check.code, 2)
    assert.match(check.stderr, hint)

    // a running node: SIGHUP with the typo is refused, logged, and the node keeps running
    const token = 'cli-e2e-token-0123456789abcdef'
    await writeFile(join(sb.dir, 'tokens'), `${token}\n`, { mode: 0o600 })
    const live = join(sb.dir, 'live.yaml')
    const good = `node:\n  priority: 5\n  api: { tokensFile: ${join(sb.dir, 'tokens')} }\ncluster:\n  name: cli\n`
    await writeFile(live, good)
    const n = await startMeshNode(sb, { id: 'h1', configFile: live, logLevel: 'info' })
    await waitUntilServing(n)
    await writeFile(live, `${good}  futureField: 1\n`.replace('priority: 5', 'prioirty: 5'))
    n.proc.kill('SIGHUP')
    const log = join(sb.dir, 'h1.log')
    await waitFor('the refused reload in the log', 15_000, async () =>
      /reload refused/.test(await readFile(log, 'utf8')) ? true : undefined,
    )
    const lines = (await readFile(log, 'utf8')).split('\n').filter((l) => l.includes('reload refused'))
    assert.match(lines.join('\n'), /node\.prioirty/)
    assert.match(lines.join('\n'), /did you mean \\"priority\\"/)
    assert.match(lines.join('\n'), /cluster\.futureField/)
    assert.ok(isRunning(n.proc))
    assert.equal((await fetch(`${n.apiUrl}/health`)).status, 200)

    // PUT /v1/config: the same hint, and the running version stays
    const before = (await (await fetch(`${n.apiUrl}/v1/config`)).json()) as { version: number }
    const res = await fetch(`${n.apiUrl}/v1/config`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ cluster: { name: 'cli', members: [{ id: 'h1', prioirty: 5, priority: 5 }] } }),
      signal: AbortSignal.timeout(10_000),
    })
    const body = JSON.stringify(await res.json())
    assert.equal(res.status, 400, body)
    assert.match(body, /cluster\.members\.0\.prioirty/)
    assert.match(body, /did you mean \\"priority\\"/)
    const after = (await (await fetch(`${n.apiUrl}/v1/config`)).json()) as { version: number }
    assert.equal(after.version, before.version)
  })
})
