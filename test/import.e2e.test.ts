import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { validateConfig } from '@pgmesh/protocol'
import { parse } from 'yaml'
import { ip } from './helpers/netns-lab.js'
import { CLI, ROOT } from './helpers/processes.js'

const exec = promisify(execFile)
const FIXTURES = join(ROOT, 'test', 'fixtures', 'import')

interface Ran {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

async function run(file: string, args: readonly string[], cwd: string): Promise<Ran> {
  try {
    const r = await exec(file, [...args], { cwd, timeout: 60_000 })
    return { code: 0, stdout: r.stdout, stderr: r.stderr }
  } catch (e) {
    const x = e as { code?: number | string; stdout?: string; stderr?: string }
    return {
      code: typeof x.code === 'number' ? x.code : -1,
      stdout: x.stdout ?? '',
      stderr: x.stderr ?? String(x.code),
    }
  }
}

const show = (r: Ran) => `exit ${r.code}\n${r.stdout}\n${r.stderr}`

describe('pgmesh import (the built CLI)', { timeout: 180_000 }, () => {
  let dir = ''
  const pgmesh = (...args: string[]) => run(process.execPath, [CLI, ...args], dir)
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgmesh-import-'))
  })
  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('the haproxy.cfg fixtures are configs HAProxy itself accepts', async () => {
    for (const f of ['haproxy-percona.cfg', 'haproxy-frontends.cfg']) {
      const r = await run('haproxy', ['-c', '-f', join(FIXTURES, f)], dir)
      assert.equal(r.code, 0, `${f}: ${show(r)}`)
    }
  })

  it('the keepalived.conf fixtures are configs Keepalived itself accepts (keepalived -t, in a namespace with their interfaces)', {
    skip: process.getuid?.() === 0 ? false : 'needs root for a network namespace',
  }, async () => {
    const ns = `pgimp${randomBytes(3).toString('hex')}`
    await ip('netns', 'add', ns)
    try {
      // the interfaces the fixtures name; a veth pair needs no kernel module beyond veth
      await ip('-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'ens3')
      for (const f of ['keepalived-track.conf', 'keepalived-slow.conf']) {
        const r = await run('ip', ['netns', 'exec', ns, 'keepalived', '-t', '-f', join(FIXTURES, f)], dir)
        assert.equal(r.code, 0, `${f}: ${show(r)}`)
      }
    } finally {
      await ip('netns', 'del', ns)
    }
  })

  it('writes a config that `pgmesh config check` accepts, and reports what it left out', async () => {
    const out = join(dir, 'pgmesh.yaml')
    const r = await pgmesh(
      'import',
      '--haproxy',
      join(FIXTURES, 'haproxy-percona.cfg'),
      '--keepalived',
      join(FIXTURES, 'keepalived-track.conf'),
      '--member',
      'proxy2=105',
      '--member',
      'proxy3=100',
      '--out',
      out,
    )
    assert.equal(r.code, 0, show(r))
    assert.equal(r.stdout, '', 'with --out nothing goes to stdout')
    assert.match(r.stderr, /UNMAPPED .*haproxy-percona\.cfg:11 retries 2\n\s+pgmesh retries on its own terms/)
    assert.match(r.stderr, /UNMAPPED .*keepalived-track\.conf:30 authentication\n/)
    assert.match(r.stderr, /REVIEW .*keepalived-track\.conf:9 vrrp_script chk_haproxy\n/)
    assert.match(r.stderr, /wrote .*pgmesh\.yaml \(2 listener\(s\), 3 database\(s\)\)/)
    const check = await pgmesh('config', 'check', out)
    assert.equal(check.code, 0, show(check))
    const whole = validateConfig(parse(await readFile(out, 'utf8')))
    assert.ok(whole.ok, 'the node section validates too')
    assert.equal(whole.value.node.id, 'proxy1')
    assert.deepEqual(
      whole.value.cluster.members.map((m) => m.id),
      ['proxy1', 'proxy2', 'proxy3'],
    )

    const again = await pgmesh(
      'import',
      '--haproxy',
      join(FIXTURES, 'haproxy-percona.cfg'),
      '--node-id',
      'p',
      '--out',
      out,
    )
    assert.equal(again.code, 1, 'an existing file is not replaced without --force')
    assert.match(again.stderr, /exists; pass --force/)
    const forced = await pgmesh(
      'import',
      '--haproxy',
      join(FIXTURES, 'haproxy-percona.cfg'),
      '--node-id',
      'p',
      '--out',
      out,
      '--force',
    )
    assert.equal(forced.code, 0, show(forced))
    assert.match(await readFile(out, 'utf8'), /id: p\n/)
  })

  it('without --out the YAML goes to stdout; --json gives the report as JSON', async () => {
    const r = await pgmesh('import', '--keepalived', join(FIXTURES, 'keepalived-slow.conf'), '--json')
    assert.equal(r.code, 0, show(r))
    const doc = validateConfig(parse(r.stdout))
    assert.ok(doc.ok)
    assert.equal(doc.value.cluster.election.nopreempt, true)
    const report = JSON.parse(r.stderr) as { notes: { source: string; line: number; kind: string }[] }
    assert.ok(report.notes.some((n) => n.source === 'keepalived' && n.line === 35 && n.kind === 'unmapped'))
  })

  it('bad input: exit 2 and a message with the file and line', async () => {
    const bad = join(dir, 'bad.cfg')
    await writeFile(bad, 'listen a\n  bind :5000\n  timeout connect soon\n')
    const r = await pgmesh('import', '--haproxy', bad, '--node-id', 'n1')
    assert.equal(r.code, 2)
    assert.match(r.stderr, /IMPORT_INVALID: haproxy\.cfg line 3: 'timeout connect soon'/)
    const missing = await pgmesh('import', '--keepalived', join(dir, 'nope.conf'))
    assert.equal(missing.code, 2)
    assert.match(missing.stderr, /IMPORT_READ: cannot read .*nope\.conf \(ENOENT\)/)
    const none = await pgmesh('import')
    assert.equal(none.code, 2)
    assert.match(none.stderr, /needs --haproxy FILE, --keepalived FILE or both/)
    const member = await pgmesh(
      'import',
      '--keepalived',
      join(FIXTURES, 'keepalived-slow.conf'),
      '--member',
      'x',
    )
    assert.equal(member.code, 2)
    assert.match(member.stderr, /--member 'x' must be ID=PRIORITY/)
  })
})
