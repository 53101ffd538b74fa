import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { WaitQueue } from './wait-queue.js'

describe('wait queue', () => {
  it('refuses beyond capacity and past the deadline, keeps order, and lets `first` jump ahead', () => {
    let now = 0
    const q = new WaitQueue<string>({ mono: () => now }, () => assert.fail('no timeout expected'))
    assert.equal(q.push('a', 1_000, 3), null)
    assert.equal(q.push('b', 1_000, 3), null)
    assert.equal(q.push('c', 1_000, 3, true), null)
    assert.equal(q.push('d', 1_000, 3), 'full')
    now = 2_000
    assert.equal(q.push('e', 1_000, 5), 'expired')
    assert.deepEqual([...q], ['c', 'a', 'b'])
    assert.equal(q.remove('a'), true)
    assert.equal(q.remove('a'), false)
    assert.equal(q.shift(), 'c')
    assert.deepEqual(q.clear(), ['b'])
    assert.equal(q.length, 0)
  })

  it('times an item out at its deadline, out of the queue first', async () => {
    const timedOut: string[] = []
    const clock = { mono: () => performance.now() }
    const q = new WaitQueue<string>(clock, (item) => {
      assert.equal(q.has(item), false)
      timedOut.push(item)
    })
    q.push('late', clock.mono() + 30, 10)
    q.push('later', clock.mono() + 5_000, 10)
    for (let i = 0; i < 200 && timedOut.length === 0; i++) await sleep(10)
    assert.deepEqual(timedOut, ['late'])
    assert.deepEqual([...q], ['later'])
    q.clear()
  })
})
