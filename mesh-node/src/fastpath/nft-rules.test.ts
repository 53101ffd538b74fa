import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  conntrackCutArgs,
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
    assert.match(
      s,
      /add rule ip pgmesh_fast_x output ip daddr 127\.0\.0\.1 tcp dport 6432 counter dnat ip to 127\.0\.0\.1:5432 comment "write"/,
    )
    assert.match(s, /prerouting ip daddr 127\.0\.0\.1 tcp dport 6432 ct mark set 0x70676d counter dnat/)
    assert.doesNotMatch(s, /6433/, 'no rule: the Node listener takes it')
    assert.match(
      s,
      /^add table ip pgmesh_fast_x\ndelete table ip pgmesh_fast_x\nadd table/,
      'replaces a stale table atomically',
    )
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
    assert.match(src, /fib daddr type local tcp dport 1 counter dnat ip to jhash ip saddr mod 4/)
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

  it('reads the per-listener counters from nft’s JSON', () => {
    const json = JSON.stringify({
      nftables: [
        { rule: { comment: 'write', expr: [{ match: {} }, { counter: { packets: 3, bytes: 180 } }] } },
        { rule: { comment: 'write', expr: [{ counter: { packets: 2, bytes: 120 } }] } },
        { rule: { expr: [{ counter: { packets: 9 } }] } },
      ],
    })
    assert.deepEqual([...parseCounters(json)], [['write', 5]])
    assert.equal(parseCounters('not json').size, 0)
  })
})
