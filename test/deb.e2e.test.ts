import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { ROOT } from './helpers/processes.js'

const exec = promisify(execFile)

interface Ran {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs a program directly (no shell), bounded in time; never throws. */
async function run(
  file: string,
  args: readonly string[],
  timeoutMs = 120_000,
  cwd = tmpdir(),
  env: NodeJS.ProcessEnv = process.env,
): Promise<Ran> {
  try {
    const r = await exec(file, [...args], { timeout: timeoutMs, cwd, env, maxBuffer: 16 * 1024 * 1024 })
    return { code: 0, stdout: r.stdout, stderr: r.stderr }
  } catch (e) {
    const x = e as { code?: number | string; stdout?: string; stderr?: string; message?: string }
    return {
      code: typeof x.code === 'number' ? x.code : -1,
      stdout: x.stdout ?? '',
      stderr: `${x.stderr ?? ''}${x.message ?? ''}`,
    }
  }
}

const show = (r: Ran) => `exit ${r.code}\n${r.stdout}\n${r.stderr}`

async function installed(): Promise<boolean> {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax
  const r = await run('dpkg-query', ['-W', '-f=${Status}', 'pgmesh'], 30_000)
  return r.code === 0 && r.stdout.includes('install ok installed')
}

const exists = async (db: 'passwd' | 'group', name: string) =>
  (await run('getent', [db, name], 10_000)).code === 0

function whyNot(): string | undefined {
  if (process.getuid?.() !== 0) return 'installing a package needs root'
  if (!existsSync('/usr/bin/dpkg-deb') || !existsSync('/usr/bin/systemd-analyze'))
    return 'needs dpkg-deb and systemd-analyze'
  return undefined
}

describe('the Debian package', { skip: whyNot() ?? false, timeout: 600_000 }, () => {
  // the CLI's own version, which `pgmesh --version` prints
  const version = (
    JSON.parse(readFileSync(join(ROOT, 'mesh-node', 'package.json'), 'utf8')) as { version: string }
  ).version
  let dir = ''
  let deb = ''
  let hadUser = false
  let hadGroup = false
  let weInstalled = false

  let preexisting = false

  before(async () => {
    preexisting = await installed()
    assert.equal(
      preexisting,
      false,
      'a pgmesh package is already installed on this machine; this test installs and purges its own build and leaves an existing install alone (dpkg --purge pgmesh to run it)',
    )
    hadUser = await exists('passwd', 'pgmesh')
    hadGroup = await exists('group', 'pgmesh')
    dir = await mkdtemp(join(tmpdir(), 'pgmesh-deb-'))
  })

  after(async () => {
    if (preexisting) return // someone else's install: not ours to purge
    if (weInstalled || (await installed())) {
      const r = await run('dpkg', ['--purge', 'pgmesh'])
      assert.equal(r.code, 0, `cleanup: dpkg --purge failed: ${show(r)}`)
    }
    // postrm keeps the system user, as Debian recommends; the test removes the one it caused
    if (!hadUser && (await exists('passwd', 'pgmesh'))) await run('userdel', ['pgmesh'], 30_000)
    if (!hadGroup && (await exists('group', 'pgmesh'))) await run('groupdel', ['pgmesh'], 30_000)
    if (dir !== '') await rm(dir, { recursive: true, force: true })
  })

  it('builds in seconds with the project script: bundle, runtime, unit, conffile, maintainer scripts', async () => {
    const t0 = performance.now()
    // the package carries the runtime these tests run on (the project's own, not the system's)
    const env = { ...process.env, PGMESH_NODE: process.execPath }
    const r = await run(join(ROOT, 'deploy', 'deb', 'build.sh'), ['--out', dir], 180_000, ROOT, env)
    assert.equal(r.code, 0, show(r))
    deb = r.stdout.trim()
    assert.ok(deb.endsWith('.deb') && existsSync(deb), `build.sh printed the package path: ${deb}`)
    // informational: the build is a copy and one dpkg-deb run (no assertion on speed)
    process.stderr.write(`deb build took ${Math.round(performance.now() - t0)} ms\n`)
    const contents = await run('dpkg-deb', ['--contents', deb], 60_000)
    for (const path of [
      './usr/bin/pgmesh',
      './usr/lib/pgmesh/bin/node',
      './usr/lib/pgmesh/dist/pgmesh.mjs',
      './lib/systemd/system/pgmesh.service',
      './etc/pgmesh/pgmesh.yaml',
    ]) {
      assert.match(contents.stdout, new RegExp(` ${path.replace(/\./g, '\\.')}\\n`), path)
    }
    const info = await run('dpkg-deb', ['--field', deb, 'Package', 'Version', 'Depends'], 60_000)
    assert.match(info.stdout, /Package: pgmesh\nVersion: (.+)\n/)
    assert.match(info.stdout, new RegExp(`Version: ${version.replace(/\./g, '\\.')}\\n`))
    const description = await run('dpkg-deb', ['--field', deb, 'Description'], 60_000)
    assert.ok(description.stdout.includes(`Node.js runtime (${process.version})`), description.stdout)
    const x = await run('dpkg-deb', ['--info', deb, 'conffiles'], 60_000)
    assert.equal(x.stdout.trim(), '/etc/pgmesh/pgmesh.yaml')
  })

  it('installs with dpkg -i, creates the pgmesh user, and starts nothing', async () => {
    assert.ok(deb !== '', 'the package was built')
    const r = await run('dpkg', ['-i', deb])
    weInstalled = true
    assert.equal(r.code, 0, show(r))
    assert.match(r.stdout, /NOT started/)
    assert.ok(await exists('passwd', 'pgmesh'), 'postinst created the pgmesh user')
    const state = statSync('/var/lib/pgmesh')
    const uid = Number((await run('id', ['-u', 'pgmesh'], 10_000)).stdout.trim())
    assert.equal(state.uid, uid, '/var/lib/pgmesh belongs to pgmesh')
    assert.equal(statSync('/etc/pgmesh').mode & 0o777, 0o750)
    assert.equal(statSync('/etc/pgmesh/pgmesh.yaml').mode & 0o777, 0o640)
    // nothing enabled, nothing running as pgmesh
    assert.equal(existsSync('/etc/systemd/system/multi-user.target.wants/pgmesh.service'), false)
    const ps = await run('pgrep', ['-u', 'pgmesh'], 10_000)
    assert.equal(ps.stdout.trim(), '', `no process runs as pgmesh: ${ps.stdout}`)
  })

  it('pgmesh --version and pgmesh config check on the example config, with the packaged runtime', async () => {
    const v = await run('/usr/bin/pgmesh', ['--version'], 60_000)
    assert.equal(v.code, 0, show(v))
    assert.equal(v.stdout.trim(), `pgmesh ${version}`)
    const runtime = await run('/usr/lib/pgmesh/bin/node', ['--version'], 60_000)
    assert.equal(runtime.stdout.trim(), process.version, 'the runtime the package was built with')
    const c = await run('/usr/bin/pgmesh', ['config', 'check', '/etc/pgmesh/pgmesh.yaml'], 60_000)
    assert.equal(c.code, 0, show(c))
    assert.match(c.stdout, /valid/)
    // the packaged CLI imports the Percona haproxy.cfg to a config its own check accepts
    const out = join(dir, 'imported.yaml')
    const i = await run(
      '/usr/bin/pgmesh',
      [
        'import',
        '--haproxy',
        join(ROOT, 'test/fixtures/import/haproxy-percona.cfg'),
        '--node-id',
        'proxy-1',
        '--out',
        out,
      ],
      60_000,
    )
    assert.equal(i.code, 0, show(i))
    const ic = await run('/usr/bin/pgmesh', ['config', 'check', out], 60_000)
    assert.equal(ic.code, 0, show(ic))
  })

  it('systemd-analyze verify accepts the installed unit, and rejects one whose binary is missing', async () => {
    const unit = '/lib/systemd/system/pgmesh.service'
    const text = await readFile(unit, 'utf8')
    assert.match(text, /^ExecStart=\/usr\/bin\/pgmesh start --config \/etc\/pgmesh\/pgmesh\.yaml$/m)
    assert.match(text, /^User=pgmesh$/m)
    const ok = await run('systemd-analyze', ['verify', unit], 60_000)
    assert.equal(ok.code, 0, show(ok))
    const broken = join(dir, 'pgmesh-broken.service')
    await writeFile(
      broken,
      text.replace('ExecStart=/usr/bin/pgmesh ', 'ExecStart=/usr/bin/pgmesh-not-installed '),
    )
    const bad = await run('systemd-analyze', ['verify', broken], 60_000)
    assert.notEqual(bad.code, 0, 'the check can fail')
  })

  it('dpkg --purge removes the files, the state and the config directory', async () => {
    const r = await run('dpkg', ['--purge', 'pgmesh'])
    assert.equal(r.code, 0, show(r))
    weInstalled = false
    for (const p of [
      '/usr/bin/pgmesh',
      '/usr/lib/pgmesh',
      '/lib/systemd/system/pgmesh.service',
      '/etc/pgmesh',
      '/var/lib/pgmesh',
    ]) {
      assert.equal(existsSync(p), false, `${p} is gone`)
    }
    assert.equal(await installed(), false)
  })
})
