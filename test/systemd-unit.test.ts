import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { parseCommandLine } from '../mesh-node/src/cli/args.js'
import { ROOT } from './helpers/processes.js'

const UNIT = join(ROOT, 'deploy', 'systemd', 'pgmesh.service')
const analyze = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((f) => existsSync(f))

describe('deploy/systemd/pgmesh.service', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgmesh-unit-'))
  after(() => rmSync(dir, { recursive: true, force: true }))
  const text = readFileSync(UNIT, 'utf8')
  const directive = (key: string) =>
    text
      .split('\n')
      .filter((l) => l.startsWith(`${key}=`))
      .map((l) => l.slice(key.length + 1))

  it('gives the process (and the commands it runs) CAP_NET_ADMIN and CAP_NET_RAW, and nothing else', () => {
    assert.deepEqual(directive('AmbientCapabilities'), ['CAP_NET_ADMIN CAP_NET_RAW'])
    assert.deepEqual(directive('CapabilityBoundingSet'), ['CAP_NET_ADMIN CAP_NET_RAW'])
    assert.deepEqual(directive('User'), ['pgmesh'])
  })

  it('cleans the VIP and its fence up after any stop, with a command the CLI knows', () => {
    const post = directive('ExecStopPost')
    assert.equal(post.length, 1)
    const argv = post[0]!.split(/\s+/)
    const sub = argv.slice(argv.findIndex((a) => a.endsWith('pgmesh.mjs')) + 1)
    const parsed = parseCommandLine(sub)
    assert.ok(parsed.ok, `'${sub.join(' ')}' does not parse`)
    assert.equal(parsed.command.kind, 'vip-cleanup')
  })

  // systemd-analyze runs here without a running systemd; CI installs it (deploy/install-deps.sh)
  it('passes systemd-analyze verify with no warning', {
    skip: analyze === undefined ? 'systemd-analyze is not installed' : false,
  }, () => {
    // node may live elsewhere on another machine: verify checks that the executables exist
    const copy = join(dir, 'pgmesh.service')
    writeFileSync(copy, text.replaceAll('/usr/bin/node', process.execPath))
    const r = spawnSync(analyze!, ['verify', copy], { encoding: 'utf8', timeout: 60_000 })
    assert.equal(r.error, undefined)
    const mine = r.stderr.split('\n').filter((l) => l.includes('pgmesh.service'))
    assert.deepEqual(mine, [], `systemd-analyze: ${r.stderr}`)
    assert.equal(r.status, 0, r.stderr)
  })

  it('the check fails on a broken unit (it would catch a typo)', {
    skip: analyze === undefined ? 'systemd-analyze is not installed' : false,
  }, () => {
    const copy = join(dir, 'pgmesh.service')
    writeFileSync(
      copy,
      text.replaceAll('/usr/bin/node', process.execPath).replace('KillSignal=SIGTERM', 'KillSignal=SIGTERMX'),
    )
    const r = spawnSync(analyze!, ['verify', copy], { encoding: 'utf8', timeout: 60_000 })
    assert.ok(r.stderr.includes('pgmesh.service'), 'systemd-analyze said nothing about a bad signal name')
  })
})
