import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { canonicalIp, formatIp, parseCidr, parseIp } from './ip.js'
import { ListenerConfigSchema } from './listeners.js'
import { PolicyDeltaSchema } from './policy.js'

/** What WHATWG URL parsing makes of an IPv6 address: an independent canonical form. */
const urlCanonical = (v6: string) => new URL(`http://[${v6}]/`).hostname.slice(1, -1)

describe('IP addresses', () => {
  it('IPv4 round-trips through parse and format', () => {
    fc.assert(fc.property(fc.ipV4(), (a) => formatIp(parseIp(a)!) === a))
  })

  it('IPv6 formats as RFC 5952 text, the same as URL parsing gives (IPv4-mapped ones as IPv4)', () => {
    fc.assert(
      fc.property(fc.ipV6(), (a) => {
        const ip = parseIp(a)
        assert.notEqual(ip, null, a)
        const want = urlCanonical(a)
        const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(want)
        if (mapped !== null) {
          assert.equal(ip!.family, 4)
          return
        }
        assert.equal(formatIp(ip!), want, a)
      }),
    )
  })

  it('rejects what is not an address', () => {
    for (const bad of [
      '',
      '1.2.3',
      '1.2.3.4.5',
      '256.1.1.1',
      '01.2.3.4',
      ':::',
      '1::2::3',
      'g::1',
      '1:2:3:4:5:6:7:8:9',
      'fe80::1%eth0',
    ]) {
      assert.equal(parseIp(bad), null, bad)
    }
    assert.equal(canonicalIp('::ffff:127.0.0.2'), '127.0.0.2')
    assert.equal(canonicalIp('::1'), '::1')
  })

  it('CIDR prefixes: host bits must be zero, lengths in range, mapped IPv4 prefixes count as IPv4', () => {
    assert.deepEqual(parseCidr('10.0.0.0/8'), { family: 4, words: [0x0a000000], bits: 8 })
    assert.ok('error' in parseCidr('10.0.0.1/8'))
    assert.ok('error' in parseCidr('10.0.0.0/33'))
    assert.ok('error' in parseCidr('2001:db8::/129'))
    assert.equal((parseCidr('::ffff:10.0.0.0/104') as { bits: number }).bits, 8)
    assert.equal((parseCidr('2001:db8::1') as { bits: number }).bits, 128)
    assert.equal((parseCidr('0.0.0.0/0') as { bits: number }).bits, 0)
  })
})

describe('listener policy config', () => {
  const base = { name: 'pg', bind: '127.0.0.1:5432', role: 'primary' }

  it('accepts allow/deny lists, limits, stick and PROXY settings with their defaults', () => {
    const l = ListenerConfigSchema.parse({
      ...base,
      allow: ['10.0.0.0/8', '2001:db8::/32'],
      deny: ['10.1.0.0/16'],
      limits: { maxConnPerSource: 10, ratePerSource: 5 },
      stick: { on: 'source' },
      proxyProtocol: { trusted: ['127.0.0.1'] },
    })
    assert.equal(l.limits?.trackedSources, 10_000)
    assert.equal(l.stick?.ttlMs, 1_800_000)
    assert.equal(l.stick?.maxEntries, 10_000)
    assert.equal(l.proxyProtocol?.required, true)
    assert.deepEqual(ListenerConfigSchema.parse(base).allow, [])
  })

  it('names the bad entry', () => {
    const r = ListenerConfigSchema.safeParse({ ...base, deny: ['10.0.0.0/8', '10.0.0.1/8'] })
    assert.equal(r.success, false)
    assert.deepEqual(r.error!.issues[0]!.path, ['deny', 1])
    assert.match(r.error!.issues[0]!.message, /bits set past/)
    assert.equal(ListenerConfigSchema.safeParse({ ...base, stick: { on: 'cookie' } }).success, false)
  })
})

describe('policy delta', () => {
  it('is bounded in entries', () => {
    const rate = Array.from({ length: 128 }, (_, i) => ({ source: `10.0.${i >> 8}.${i & 255}`, used: 1 }))
    const ok = PolicyDeltaSchema.safeParse({ seq: 1, listeners: [{ name: 'a', rate, stick: [] }] })
    assert.equal(ok.success, true)
    const tooMany = PolicyDeltaSchema.safeParse({
      seq: 1,
      listeners: [
        { name: 'a', rate, stick: [] },
        { name: 'b', rate, stick: [] },
        { name: 'c', rate: rate.slice(0, 1), stick: [] },
      ],
    })
    assert.equal(tooMany.success, false)
    assert.equal(
      PolicyDeltaSchema.safeParse({
        seq: 1,
        listeners: [{ name: 'a', rate: [{ source: 'x', used: 1 }], stick: [] }],
      }).success,
      false,
    )
  })
})
