import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { type Cidr, formatIp, parseCidr, parseIp } from '@pgmesh/protocol'
import fc from 'fast-check'
import { AccessList } from './access-list.js'
import { PrefixTrie } from './prefix-trie.js'

/** The first `bits` bits of two addresses agree. */
function within(words: readonly number[], p: { words: readonly number[]; bits: number }): boolean {
  for (let i = 0; i < p.bits; i++) {
    const w = i >>> 5
    const s = 31 - (i & 31)
    if (((words[w]! >>> s) & 1) !== ((p.words[w]! >>> s) & 1)) return false
  }
  return true
}

const v4Prefix = fc
  .tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 }))
  .map(([n, bits]) => {
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
    return `${formatIp({ family: 4, words: [(n & mask) >>> 0] })}/${bits}`
  })

describe('PrefixTrie', () => {
  it('finds the longest matching prefix, as a linear scan does', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(v4Prefix, fc.boolean()), { maxLength: 60 }),
        fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 1, maxLength: 30 }),
        (entries, addrs) => {
          const allow = entries.filter(([, d]) => !d).map(([c]) => c)
          const deny = entries.filter(([, d]) => d).map(([c]) => c)
          const list = new AccessList(allow, deny)
          for (const n of addrs) {
            const ip = { family: 4 as const, words: [n] }
            let best: { bits: number; deny: boolean } | null = null
            for (const [c, d] of entries) {
              const p = parseCidr(c) as Cidr
              if (!within(ip.words, p)) continue
              if (best === null || p.bits > best.bits || (p.bits === best.bits && d))
                best = { bits: p.bits, deny: d }
            }
            const v = list.check(ip)
            const want = best === null ? allow.length === 0 : !best.deny
            assert.equal(v.admit, want, `${formatIp(ip)} against ${JSON.stringify(entries)}`)
          }
        },
      ),
    )
  })

  it('keeps IPv6 and IPv4 apart, and counts a mapped IPv4 client as IPv4', () => {
    const t = new PrefixTrie()
    t.insert(parseCidr('10.0.0.0/8') as never, 1)
    t.insert(parseCidr('2001:db8::/32') as never, 2)
    t.insert(parseCidr('::/0') as never, 3)
    assert.equal(t.match(parseIp('10.9.9.9')!), 1)
    assert.equal(t.match(parseIp('::ffff:10.9.9.9')!), 1)
    assert.equal(t.match(parseIp('11.0.0.1')!), -1)
    assert.equal(t.match(parseIp('2001:db8:1::5')!), 2)
    assert.equal(t.match(parseIp('2001:db9::5')!), 3)
  })

  it('stays small and correct with 1,000+ prefixes', () => {
    const allow: string[] = []
    for (let i = 0; i < 1200; i++) allow.push(`10.${i >> 8}.${i & 255}.0/24`)
    const list = new AccessList(allow, ['10.0.5.128/25'])
    assert.equal(list.check(parseIp('10.4.175.9')!).admit, true)
    assert.equal(list.check(parseIp('10.4.176.9')!).admit, false)
    assert.equal(list.check(parseIp('10.0.5.200')!).admit, false)
    assert.equal(list.check(parseIp('10.0.5.100')!).admit, true)
  })
})

describe('AccessList', () => {
  it('counts hits per rule and carries them over a reload of the same rule', () => {
    const a = new AccessList(['127.0.0.0/8'], ['127.0.0.3'])
    a.check(parseIp('127.0.0.2')!)
    a.check(parseIp('127.0.0.3')!)
    a.check(parseIp('127.0.0.3')!)
    const v = a.check(parseIp('127.0.0.3')!)
    assert.equal(v.admit, false)
    assert.equal(a.rules.find((r) => r.list === 'deny')!.hits, 3)
    const b = new AccessList(['127.0.0.0/8'], ['127.0.0.4'], a)
    assert.equal(b.rules.find((r) => r.list === 'allow')!.hits, 1)
    assert.equal(b.rules.find((r) => r.list === 'deny')!.hits, 0)
    assert.deepEqual(new AccessList(['10.0.0.0/8'], []).check(parseIp('::1')!), {
      admit: false,
      reason: 'notAllowed',
      rule: null,
    })
  })
})
