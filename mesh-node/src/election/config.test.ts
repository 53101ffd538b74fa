import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { checkPriorityWeights, ElectionConfigSchema, TrackedCheckSchema } from '@pgmesh/protocol'

describe('election config schema', () => {
  it('documents its defaults', () => {
    const c = ElectionConfigSchema.parse({})
    assert.equal(c.quorum, 'majority')
    assert.equal(c.nopreempt, false)
    assert.equal(c.preemptDelayMs, 0)
    assert.equal(c.heartbeatIntervalMs, 50)
    assert.equal(c.leaseMs, 250)
    assert.equal(c.electionTimeoutMinMs, 300)
    assert.equal(c.electionTimeoutMaxMs, 400)
    assert.equal(c.maxClockDriftMs, 10)
  })

  it('rejects timings that cannot hold a lease', () => {
    const r = ElectionConfigSchema.safeParse({ heartbeatIntervalMs: 100, leaseMs: 200, maxClockDriftMs: 80 })
    assert.ok(!r.success)
    const paths = r.error.issues.map((i) => i.path.join('.'))
    assert.ok(paths.includes('leaseMs'))
    assert.ok(paths.includes('maxClockDriftMs'))
  })

  it('parses a tracked check with a weight', () => {
    const c = TrackedCheckSchema.parse({
      name: 'patroni',
      kind: 'http',
      url: 'http://127.0.0.1:8008/health',
      weight: -20,
    })
    assert.equal(c.weight, -20)
    assert.equal(c.intervalMs, 1000)
    assert.ok(
      !TrackedCheckSchema.safeParse({ name: 'x', kind: 'tcp', host: 'h', port: 1, weight: 255 }).success,
    )
  })
})

describe('checkPriorityWeights (Keepalived sizing rule)', () => {
  it('accepts weights that drop a failed node below every healthy node', () => {
    const issues = checkPriorityWeights([
      { id: 'a', priority: 110, checks: [{ name: 'pg', weight: -20 }] },
      { id: 'b', priority: 105, checks: [{ name: 'pg', weight: -20 }] },
      { id: 'c', priority: 100, checks: [] },
    ])
    assert.deepEqual(issues, [])
  })

  it('names the nodes and the numbers when a failed node would stay on top', () => {
    const issues = checkPriorityWeights([
      { id: 'a', priority: 110, checks: [{ name: 'pg', weight: -10 }] },
      { id: 'b', priority: 100, checks: [] },
    ])
    assert.equal(issues.length, 1)
    const [issue] = issues
    assert.equal(issue?.path, 'nodes.0.checks')
    for (const part of ['"a"', '110', '100', '"b"', 'pg -10', '99', '-11']) {
      assert.ok(issue?.message.includes(part), `${part} in: ${issue?.message}`)
    }
  })

  it('counts positive weights on healthy nodes and only weight-0 checks mean FAULT', () => {
    const issues = checkPriorityWeights([
      { id: 'a', priority: 110, checks: [{ name: 'pg', weight: -15 }] },
      { id: 'b', priority: 90, checks: [{ name: 'bonus', weight: 10 }] },
      { id: 'c', priority: 80, checks: [{ name: 'pg', weight: 0 }] },
    ])
    assert.equal(issues.length, 2, JSON.stringify(issues))
    assert.ok(issues.some((i) => i.message.includes('"a"') && i.message.includes('95')))
    assert.ok(issues.some((i) => i.message.includes('"b"') && i.message.includes('no negative weights')))
  })

  it('rejects equal priorities', () => {
    const issues = checkPriorityWeights([
      { id: 'a', priority: 100, checks: [] },
      { id: 'b', priority: 100, checks: [] },
    ])
    assert.equal(issues.length, 1)
    assert.match(issues[0]?.message ?? '', /"b" has priority 100, the same as node "a"/)
  })
})
