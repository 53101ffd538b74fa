import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  conntrackCutArgs,
  counterName,
  fastPathScript,
  type KernelRoute,
  MAX_SLOTS,
  parseCounters,
  weightedSlots,
} from './nft-rules.js'

const t = (id: string, port: number, weight = 1) => ({ id, host: '127.0.0.1', port, weight })

describe('fast-path nft rules', () => {
  it('a certain route becomes a DNAT rule in output and prerouting; an uncertain one none', () => {
    const routes: KernelRoute[] = [
      { listener: 'write', host: '127.0.0.1', port: 6432, balance: 'roundrobin', targets: [t('db1', 5432)] },
      { listener: 'read', host: '0.0.0.0', port: 6433, balance: 'roundrobin', targets: null },
    ]
    const s = fastPathScript('pgmesh_fast_x', routes)
    const c = counterName('write')
    assert.match(c, /^new_[0-9a-f]{12}$/)
    assert.ok(
      s.includes(
        `add rule ip pgmesh_fast_x output ip daddr 127.0.0.1 tcp dport 6432 counter name ${c} dnat ip to 127.0.0.1:5432 comment "write"`,
      ),
    )
    assert.match(s, /prerouting ip daddr 127\.0\.0\.1 tcp dport 6432 ct mark set 0x70676d counter name new_/)
    assert.doesNotMatch(s, /6433/, 'no rule: the Node listener takes it')
    assert.ok(
      s.includes(`add counter ip pgmesh_fast_x ${counterName('read')}`),
      'an uncertain route keeps its counter',
    )
  })

  it('an update refills the chains and keeps the table (and its counters); a gone listener’s counter goes', () => {
    const routes: KernelRoute[] = [
      { listener: 'write', host: '127.0.0.1', port: 6432, balance: 'roundrobin', targets: [t('db1', 5432)] },
    ]
    const s = fastPathScript('pgmesh_fast_x', routes, [counterName('old')])
    assert.doesNotMatch(s, /delete table/)
    for (const chain of ['output', 'prerouting', 'postrouting', 'input']) {
      assert.ok(s.includes(`flush chain ip pgmesh_fast_x ${chain}\n`), chain)
    }
    const old = counterName('old')
    assert.ok(s.includes(`add counter ip pgmesh_fast_x ${old}\ndelete counter ip pgmesh_fast_x ${old}`))
    // the flushes come before the counter goes: a counter a rule still uses cannot be deleted
    assert.ok(s.indexOf('flush chain ip pgmesh_fast_x input') < s.indexOf(`delete counter`))
  })

  it('balances with weighted maps: numgen for roundrobin, jhash of the source for source', () => {
    const targets = [t('a', 1), t('b', 2, 3)]
    const rr = fastPathScript('x', [
      { listener: 'r', host: '127.0.0.1', port: 1, balance: 'roundrobin', targets },
    ])
    assert.match(
      rr,
      /numgen inc mod 4 map \{ 0 : 127\.0\.0\.1 \. 1, 1 : 127\.0\.0\.1 \. 2, 2 : 127\.0\.0\.1 \. 2, 3 : 127\.0\.0\.1 \. 2 \}/,
    )
    const src = fastPathScript('x', [{ listener: 'r', host: '0.0.0.0', port: 1, balance: 'source', targets }])
    assert.match(src, /fib daddr type local tcp dport 1 counter name new_\w+ dnat ip to jhash ip saddr mod 4/)
  })

  it('weights scale down to a bounded map and a weight-0 target is used only alone', () => {
    const many = Array.from({ length: 10 }, (_, i) => t(`b${i}`, i + 1, 200))
    const slots = weightedSlots(many)
    assert.ok(slots.length <= MAX_SLOTS + many.length, `${slots.length} slots`)
    assert.equal(new Set(slots.map((s) => s.id)).size, 10)
    assert.deepEqual(
      weightedSlots([t('a', 1, 0), t('b', 2, 1)]).map((s) => s.id),
      ['b'],
    )
    assert.deepEqual(
      weightedSlots([t('a', 1, 0)]).map((s) => s.id),
      ['a'],
    )
  })

  it('refuses anything but an IPv4 address in a rule (no injection through a host string)', () => {
    const bad = {
      listener: 'x',
      host: '127.0.0.1; flush ruleset',
      port: 1,
      balance: 'first' as const,
      targets: [t('a', 1)],
    }
    assert.throws(() => fastPathScript('x', [bad]), /not an IPv4 address/)
    assert.throws(
      () => conntrackCutArgs({ host: '::1', port: 1 }, { host: '127.0.0.1', port: 2 }),
      /not an IPv4/,
    )
  })

  it('cuts a listener’s flows to one backend by its reply source', () => {
    assert.deepEqual(conntrackCutArgs({ host: '127.0.0.1', port: 6432 }, { host: '127.0.0.2', port: 5432 }), [
      '-D',
      '-p',
      'tcp',
      '--orig-dst',
      '127.0.0.1',
      '--orig-port-dst',
      '6432',
      '--reply-src',
      '127.0.0.2',
      '--reply-port-src',
      '5432',
    ])
  })

  it('reads the named counters from nft’s JSON', () => {
    const json = JSON.stringify({
      nftables: [
        { metainfo: { version: '1.0.6' } },
        { counter: { family: 'ip', name: 'new_a', table: 'x', handle: 2, packets: 5, bytes: 300 } },
        { counter: { name: 'new_b', packets: 'x' } },
        null,
      ],
    })
    assert.deepEqual([...parseCounters(json)], [['new_a', 5]])
    assert.equal(parseCounters('not json').size, 0)
    assert.equal(parseCounters('{"nftables":7}').size, 0)
  })
})
