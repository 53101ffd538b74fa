import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { SourceLimits } from './source-limits.js'

describe('SourceLimits', () => {
  it('limits open connections per source, and frees the slot on release', () => {
    const l = new SourceLimits({ maxConnPerSource: 2, trackedSources: 100 })
    assert.equal(l.admit('a', 0), 'ok')
    assert.equal(l.admit('a', 0), 'ok')
    assert.equal(l.admit('a', 0), 'overConnections')
    assert.equal(l.admit('b', 0), 'ok')
    l.release('a')
    assert.equal(l.admit('a', 0), 'ok')
    l.release('a')
    l.release('a')
    l.release('b')
    assert.equal(l.connectedSources, 0)
  })

  it('a token bucket: burst at once, then the rate', () => {
    const l = new SourceLimits({ ratePerSource: 10, burst: 3, trackedSources: 100 })
    for (let i = 0; i < 3; i++) assert.equal(l.admit('a', 0), 'ok')
    assert.equal(l.admit('a', 0), 'overRate')
    assert.equal(l.admit('a', 50), 'overRate')
    assert.equal(l.admit('a', 100), 'ok')
    assert.equal(l.admit('b', 100), 'ok')
  })

  it('never admits more than burst + rate × time from one source (property)', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.5, max: 100, noNaN: true }),
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.integer({ min: 0, max: 200 }), { minLength: 1, maxLength: 300 }),
        (rate, burst, gaps) => {
          const l = new SourceLimits({ ratePerSource: rate, burst, trackedSources: 16 })
          let now = 0
          let admitted = 0
          for (const g of gaps) {
            now += g
            if (l.admit('s', now) === 'ok') admitted++
            l.release('s')
          }
          assert.ok(admitted <= burst + (rate * now) / 1000 + 1e-9, `${admitted} in ${now} ms`)
        },
      ),
    )
  })

  it('stays bounded under a flood of distinct sources', () => {
    const l = new SourceLimits({ ratePerSource: 1, trackedSources: 100 })
    for (let i = 0; i < 10_000; i++) {
      assert.equal(l.admit(`s${i}`, i), 'ok')
      l.release(`s${i}`)
    }
    assert.equal(l.trackedSources, 100)
    assert.equal(l.connectedSources, 0)
    assert.ok(l.exportUse(10_000, 1_000).length <= 100)
  })

  it('remote use drains the bucket here too; the debt is bounded', () => {
    const l = new SourceLimits({ ratePerSource: 10, burst: 10, trackedSources: 100 })
    l.debit('a', 10, 0)
    assert.equal(l.admit('a', 0), 'overRate')
    l.debit('a', 1_000, 0)
    assert.equal(l.tokens('a', 0), -10)
    // two bursts' time later it is served again
    assert.equal(l.admit('a', 2_000), 'ok')
  })

  it('exports what it admitted since the last export, nearest the limit first, once', () => {
    const l = new SourceLimits({ ratePerSource: 10, burst: 10, trackedSources: 100 })
    for (let i = 0; i < 8; i++) l.admit('busy', 0)
    l.admit('quiet', 0)
    assert.deepEqual(l.exportUse(0, 10), [
      { source: 'busy', used: 8 },
      { source: 'quiet', used: 1 },
    ])
    assert.deepEqual(l.exportUse(0, 10), [])
    l.debit('other', 5, 0)
    assert.deepEqual(l.exportUse(0, 10), [], 'remote use is not sent on')
  })
})
