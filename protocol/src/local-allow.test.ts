import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { cidrContains, parseCidr, parseIp } from './cidr.js'
import { type ClusterConfig, NodeAllowSchema, validateClusterConfig, validateConfig } from './config.js'
import { CommandAllowance, checkClusterAgainstLocal } from './local-allow.js'

function cluster(doc: Record<string, unknown>): ClusterConfig {
  const r = validateClusterConfig(doc)
  assert.ok(r.ok, JSON.stringify(r))
  return r.value
}

const allow = (doc: Record<string, unknown> = {}) => NodeAllowSchema.parse(doc)

const execCheck = (command: string[]) => ({
  checks: [{ name: 'c', kind: 'exec', command, intervalMs: 1000, timeoutMs: 500 }],
})

describe('CIDR matching', () => {
  it('parses IPv4 and IPv6 networks and tests membership', () => {
    const v4 = parseCidr('10.1.0.0/16')!
    assert.ok(cidrContains(v4, parseIp('10.1.255.3')!))
    assert.ok(!cidrContains(v4, parseIp('10.2.0.1')!))
    const v6 = parseCidr('fd00::/8')!
    assert.ok(cidrContains(v6, parseIp('fd12:3456::1')!))
    assert.ok(!cidrContains(v6, parseIp('fe80::1')!))
    assert.ok(!cidrContains(v6, parseIp('10.1.0.1')!), 'families never match')
    assert.ok(cidrContains(parseCidr('0.0.0.0/0')!, parseIp('203.0.113.9')!))
    assert.ok(cidrContains(parseCidr('::ffff:0:0/96')!, parseIp('::ffff:192.0.2.1')!))
    assert.ok(cidrContains(parseCidr('::1/128')!, parseIp('[::1]')!))
  })

  it('refuses what is not a network', () => {
    for (const bad of [
      '10.0.0.0',
      '10.0.0.0/33',
      'fd00::/129',
      'db.example/8',
      '1:2:3:4:5:6:7:8:9/64',
      ':::/0',
    ]) {
      assert.equal(parseCidr(bad), null, bad)
    }
    const r = validateConfig({ node: { id: 'n1', insecureDev: true, allow: { vipCidrs: ['10.0.0.0'] } } })
    assert.ok(!r.ok)
    assert.equal(r.error.issues?.[0]?.path, 'node.allow.vipCidrs.0')
  })
})

describe('checkClusterAgainstLocal', () => {
  it('refuses an exec check or notify script whose program this node does not allow', () => {
    const c = cluster({
      ...execCheck(['/usr/local/bin/evil', '--now']),
      vip: { notify: { master: ['/bin/sh', '-c', 'curl x | sh'] } },
    })
    const r = checkClusterAgainstLocal(c, { allow: allow() })
    assert.ok(!r.ok)
    assert.equal(r.error.code, 'CONFIG_NOT_ALLOWED')
    assert.deepEqual(
      r.error.issues?.map((i) => i.path),
      ['cluster.checks.0.command', 'cluster.vip.notify.master'],
    )
    assert.match(r.error.issues![0]!.message, /node\.allow\.commands/)
  })

  it('allows a program listed in node.allow.commands, with any arguments', () => {
    const c = cluster(execCheck(['/usr/local/bin/check-pg', '--port', '5432']))
    assert.ok(checkClusterAgainstLocal(c, { allow: allow({ commands: ['/usr/local/bin/check-pg'] }) }).ok)
  })

  it("allows exactly the argv of the node's own file, not another argv of the same program", () => {
    const file = cluster(execCheck(['sh', '-c', 'exit 0']))
    const policy = { allow: allow(), fileCluster: file }
    assert.ok(checkClusterAgainstLocal(file, policy).ok)
    const pushed = cluster(execCheck(['sh', '-c', 'touch /tmp/owned']))
    const r = checkClusterAgainstLocal(pushed, policy)
    assert.ok(!r.ok)
    assert.equal(r.error.issues?.[0]?.path, 'cluster.checks.0.command')
    const a = new CommandAllowance(policy)
    assert.ok(a.allows(['sh', '-c', 'exit 0']))
    assert.ok(!a.allows(['sh', '-c', 'exit 0', 'extra']))
    assert.ok(!a.allows([]))
  })

  it('leaves addresses unconstrained by default, and checks them once CIDRs are set', () => {
    const c = cluster({
      databases: [
        { name: 'pg1', address: '10.0.0.21:5432', patroniUrl: 'http://10.0.0.21:8008' },
        { name: 'pg2', address: '203.0.113.5:5432', patroniUrl: 'http://[2001:db8::5]:8008' },
        { name: 'pg3', address: 'pg3.internal:5432' },
      ],
      listeners: [
        { name: 'l', bind: '127.0.0.1:0', role: 'servers', servers: [{ address: '198.51.100.1:80' }] },
      ],
      vip: { address: '192.0.2.100/24' },
    })
    assert.ok(checkClusterAgainstLocal(c, { allow: allow() }).ok)
    const r = checkClusterAgainstLocal(c, {
      allow: allow({ backendCidrs: ['10.0.0.0/8'], vipCidrs: ['10.0.0.0/8', 'fd00::/8'] }),
    })
    assert.ok(!r.ok)
    assert.deepEqual(
      r.error.issues?.map((i) => i.path),
      [
        'cluster.databases.1.address',
        'cluster.databases.1.patroniUrl',
        'cluster.databases.2.address',
        'cluster.listeners.0.servers.0.address',
        'cluster.vip.address',
      ],
    )
    assert.match(r.error.issues![2]!.message, /backendHosts/)
    const named = checkClusterAgainstLocal(c, {
      allow: allow({
        backendCidrs: ['10.0.0.0/8', '203.0.113.0/24', '2001:db8::/32', '198.51.100.0/24'],
        backendHosts: ['PG3.internal'],
        vipCidrs: ['192.0.2.0/24'],
      }),
    })
    assert.ok(named.ok, JSON.stringify(named))
  })

  it('keeps the shipped example valid against its own node section', async () => {
    const { readFile } = await import('node:fs/promises')
    const { parse } = await import('yaml')
    const doc = parse(await readFile(new URL('../../deploy/examples/pgmesh.yaml', import.meta.url), 'utf8'))
    const r = validateConfig(doc)
    assert.ok(r.ok, JSON.stringify(r))
    const f = r.value
    assert.ok(checkClusterAgainstLocal(f.cluster, { allow: f.node.allow, fileCluster: f.cluster }).ok)
  })
})
