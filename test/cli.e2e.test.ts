import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { freePort, runCli, Sandbox } from './helpers/processes.js'

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
    for (const p of ['node.priority', 'node.gossip.listen', 'node:', 'cluster.membership.deadTimeoutMs']) {
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
    const v = await runCli(sb, ['version'])
    assert.equal(v.code, 0)
    assert.match(v.stdout, /^pgmesh \d+\.\d+\.\d+\n$/)
  })
})
