import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ClusterConfigSchema, NodeAllowSchema } from '@pgmesh/protocol'
import { LocalPolicy } from './local-policy.js'

const withCheck = (command: string[]) =>
  ClusterConfigSchema.parse({
    checks: [{ name: 'c', kind: 'exec', command, intervalMs: 1000, timeoutMs: 500 }],
  })

describe('LocalPolicy', () => {
  it("admits and gates the same way, and a reload's file allows its own new argv", () => {
    const first = withCheck(['/usr/local/bin/a'])
    const p = new LocalPolicy({ allow: NodeAllowSchema.parse({}), fileCluster: first })
    assert.ok(p.admit(first).ok)
    assert.ok(p.allows(['/usr/local/bin/a']))
    const next = withCheck(['/usr/local/bin/b'])
    const refused = p.admit(next)
    assert.ok(!refused.ok)
    assert.equal(refused.error.code, 'CONFIG_NOT_ALLOWED')
    assert.ok(!p.allows(['/usr/local/bin/b']))
    assert.match(p.refusal(['/usr/local/bin/b']), /node\.allow\.commands/)
    p.set({ allow: NodeAllowSchema.parse({}), fileCluster: next })
    assert.ok(p.admit(next).ok)
    assert.ok(p.allows(['/usr/local/bin/b']))
    assert.ok(!p.allows(['/usr/local/bin/a']), 'the old file no longer allows anything')
  })
})
