import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseHostPort } from './address.js'
import { validateConfig } from './config.js'
import { formatError } from './errors.js'

describe('config schema', () => {
  it('fills documented defaults for a minimal config', () => {
    const r = validateConfig({ node: { id: 'n1', secretFile: '/etc/pgmesh/secret' } })
    assert.ok(r.ok, JSON.stringify(r))
    const c = r.value
    assert.equal(c.node.priority, 100)
    assert.deepEqual(c.node.gossip.listen, { host: '0.0.0.0', port: 7946 })
    assert.deepEqual(c.node.api.listen, { host: '127.0.0.1', port: 7947 })
    assert.deepEqual(c.node.join, [])
    assert.equal(c.cluster.name, 'pgmesh')
    assert.equal(c.cluster.membership.heartbeatIntervalMs, 500)
    assert.equal(c.cluster.membership.suspectTimeoutMs, 1500)
    assert.equal(c.cluster.membership.deadTimeoutMs, 4000)
    assert.equal(c.cluster.gossip.maxMessageBytes, 65536)
    assert.equal(c.node.joinRetry.maxMs, 5000)
  })

  it('parses join addresses including IPv6', () => {
    const r = validateConfig({
      node: {
        id: 'n2',
        insecureDev: true,
        join: ['127.0.0.1:7946', '[::1]:7000', 'db-proxy-1.example:7946'],
      },
    })
    assert.ok(r.ok)
    assert.deepEqual(r.value.node.join, [
      { host: '127.0.0.1', port: 7946 },
      { host: '::1', port: 7000 },
      { host: 'db-proxy-1.example', port: 7946 },
    ])
  })

  it('requires a secret unless insecureDev', () => {
    const r = validateConfig({ node: { id: 'n1' } })
    assert.ok(!r.ok)
    assert.equal(r.error.code, 'CONFIG_INVALID')
    assert.ok(r.error.issues?.some((i) => i.path === 'node.secretFile' && /pgmesh keygen/.test(i.message)))
  })

  it('lists every problem with its path', () => {
    const r = validateConfig({
      node: {
        id: '-bad',
        priority: 300,
        gossip: { listen: 'nohost' },
        join: ['1.2.3.4:99999'],
        colour: 'red',
      },
      cluster: { membership: { heartbeatIntervalMs: 500, suspectTimeoutMs: 600, deadTimeoutMs: 500 } },
    })
    assert.ok(!r.ok)
    const paths = r.error.issues?.map((i) => i.path) ?? []
    for (const p of [
      'node.id',
      'node.priority',
      'node.gossip.listen',
      'node.join.0',
      'node.colour',
      'cluster.membership.suspectTimeoutMs',
      'cluster.membership.deadTimeoutMs',
    ]) {
      assert.ok(paths.includes(p), `missing issue at ${p}: ${JSON.stringify(r.error.issues)}`)
    }
    assert.match(formatError(r.error), /colour/)
  })

  it('rejects non-objects', () => {
    for (const doc of [null, 42, 'node: x', []]) assert.ok(!validateConfig(doc).ok)
  })
})

describe('parseHostPort', () => {
  it('accepts host:port forms', () => {
    assert.deepEqual(parseHostPort('127.0.0.1:80'), { ok: true, value: { host: '127.0.0.1', port: 80 } })
    assert.deepEqual(parseHostPort('[::1]:80'), { ok: true, value: { host: '::1', port: 80 } })
    assert.deepEqual(parseHostPort('localhost:0', true), { ok: true, value: { host: 'localhost', port: 0 } })
  })
  it('rejects bad forms with ADDRESS_INVALID', () => {
    for (const s of [
      '',
      '127.0.0.1',
      ':80',
      '::1:80',
      '1.2.3.4:0',
      '1.2.3.4:65536',
      'a b:1',
      '[zz]:1',
      'x:-1',
    ]) {
      const r = parseHostPort(s)
      assert.ok(!r.ok, s)
      assert.equal(r.error.code, 'ADDRESS_INVALID')
    }
  })

  it('reports duplicate names and bind addresses in the cluster section, naming both items', () => {
    const server = { address: '127.0.0.1:6' }
    const r = validateConfig({
      node: { id: 'a', insecureDev: true },
      cluster: {
        checks: [
          { name: 'x', kind: 'file', path: '/x' },
          { name: 'x', kind: 'file', path: '/y' },
        ],
        listeners: [
          { name: 'l', bind: '127.0.0.1:5', role: 'servers', servers: [server] },
          { name: 'l', bind: '127.0.0.1:5', role: 'servers', servers: [server] },
        ],
      },
    })
    assert.ok(!r.ok)
    const issues = (r.error.issues ?? []).map((i) => `${i.path}: ${i.message}`)
    assert.ok(
      issues.includes('cluster.checks.1: duplicate check name "x" (also checks.0)'),
      issues.join('\n'),
    )
    assert.ok(issues.includes('cluster.listeners.1: duplicate listener "l" (also listeners.0)'))
    assert.ok(
      issues.includes('cluster.listeners.1: bind address 127.0.0.1:5 is used twice (also listeners.0)'),
    )
  })

  it('the database checks in use must be able to tell each listener role apart', () => {
    const cluster = (use: string[], patroniUrl?: string) => ({
      databases: [{ name: 'pg1', address: '127.0.0.1:5432', ...(patroniUrl ? { patroniUrl } : {}) }],
      databaseChecks: { use },
      listeners: [
        { name: 'w', bind: '127.0.0.1:5000', role: 'primary' },
        { name: 'r', bind: '127.0.0.1:5001', role: 'replica' },
        { name: 'a', bind: '127.0.0.1:5002', role: 'any' },
      ],
    })
    const problems = (use: string[], patroniUrl?: string) => {
      const r = validateConfig({ node: { id: 'a', insecureDev: true }, cluster: cluster(use, patroniUrl) })
      return r.ok ? [] : (r.error.issues ?? []).map((i) => `${i.path}: ${i.message}`)
    }
    assert.deepEqual(problems(['postgres', 'tcp']), [])
    const tcpOnly = problems(['tcp'])
    assert.equal(tcpOnly.length, 2, tcpOnly.join('\n'))
    assert.match(tcpOnly[0]!, /^cluster\.listeners\.0\.role: role "primary" needs the "postgres" check/)
    assert.match(
      tcpOnly[1]!,
      /^cluster\.listeners\.1\.role: role "replica" needs the "postgres" or "patroni"/,
    )
    assert.deepEqual(
      problems(['patroni']).filter((p) => p.startsWith('cluster.databases')),
      [
        'cluster.databases.0.patroniUrl: databaseChecks.use has only "patroni": every database needs a patroniUrl',
      ],
    )
    assert.match(problems(['tcp', 'tcp']).join(), /each check kind at most once/)
    const defaults = validateConfig({ node: { id: 'a', insecureDev: true } })
    assert.ok(defaults.ok)
    assert.deepEqual(defaults.value.cluster.databaseChecks.use, ['postgres', 'patroni'])
  })
})
