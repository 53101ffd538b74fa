import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { StickTable } from './stick-table.js'

describe('StickTable', () => {
  it('remembers a source until its TTL passes since its last use', () => {
    const t = new StickTable({ ttlMs: 1_000, maxEntries: 10 })
    t.touch('a', 'db1', 0)
    assert.equal(t.get('a', 900), 'db1')
    t.touch('a', 'db1', 900)
    assert.equal(t.get('a', 1_800), 'db1')
    assert.equal(t.get('a', 1_901), null)
    assert.equal(t.size, 0)
  })

  it('is bounded: the least recently used go first (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 200 }), fc.constantFrom('x', 'y', 'z')), {
          maxLength: 500,
        }),
        (max, ops) => {
          const t = new StickTable({ ttlMs: 1e9, maxEntries: max })
          let now = 0
          for (const [s, b] of ops) {
            t.touch(`s${s}`, b, now++)
            assert.ok(t.size <= max)
          }
          if (ops.length > 0) {
            const [s, b] = ops[ops.length - 1]!
            assert.equal(t.get(`s${s}`, now), b)
          }
        },
      ),
    )
  })

  it('adopts a remote entry only when it was used more recently, and does not send it on', () => {
    const t = new StickTable({ ttlMs: 10_000, maxEntries: 10 })
    t.touch('a', 'db1', 1_000)
    t.exportUse(1_000, 10)
    t.merge('a', 'db2', 500, 2_000) // used at 1500 elsewhere: newer
    assert.equal(t.get('a', 2_000), 'db2')
    t.merge('a', 'db3', 900, 2_000) // used at 1100: older than 1500
    assert.equal(t.get('a', 2_000), 'db2')
    t.merge('b', 'db1', 20_000, 2_000) // expired already
    assert.equal(t.get('b', 2_000), null)
    assert.deepEqual(t.exportUse(2_000, 10), [])
  })

  it('exports the entries made here, newest first, within the cap', () => {
    const t = new StickTable({ ttlMs: 10_000, maxEntries: 100 })
    for (let i = 0; i < 20; i++) t.touch(`s${i}`, 'db1', i)
    const out = t.exportUse(20, 5)
    assert.deepEqual(
      out.map((e) => e.source),
      ['s19', 's18', 's17', 's16', 's15'],
    )
    assert.equal(out[0]!.ageMs, 1)
    assert.deepEqual(
      t.recent(20, 3).map((e) => e.source),
      ['s19', 's18', 's17'],
    )
  })
})
