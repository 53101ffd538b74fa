import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { TopSources } from './top-sources.js'

describe('TopSources', () => {
  it('keeps a heavy hitter among floods of one-off sources, in bounded memory', () => {
    const t = new TopSources(16)
    for (let i = 0; i < 5_000; i++) {
      t.add(`flood${i}`)
      if (i % 10 === 0) t.add('heavy')
    }
    assert.equal(t.size, 16)
    assert.equal(t.top(1)[0]!.source, 'heavy')
  })

  it('never under-counts a source it reports (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 30 }), { maxLength: 400 }), (xs) => {
        const t = new TopSources(8)
        const real = new Map<string, number>()
        for (const x of xs) {
          t.add(`s${x}`)
          real.set(`s${x}`, (real.get(`s${x}`) ?? 0) + 1)
        }
        for (const { source, refused } of t.top(8)) assert.ok(refused >= real.get(source)!)
        assert.ok(t.size <= 8)
      }),
    )
  })
})
