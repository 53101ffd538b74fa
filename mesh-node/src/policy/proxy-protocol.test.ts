import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import {
  decodeProxyHeader,
  encodeProxyV1,
  encodeProxyV2,
  looksLikeProxyHeader,
  type ProxyAddresses,
  V2_SIGNATURE,
} from './proxy-protocol.js'

const port = fc.integer({ min: 0, max: 65535 })
const v4Pair = fc.record({ source: fc.ipV4(), dest: fc.ipV4(), sourcePort: port, destPort: port })

describe('PROXY protocol', () => {
  it('v1 and v2 round-trip IPv4 addresses, with client bytes after the header untouched (property)', () => {
    fc.assert(
      fc.property(v4Pair, fc.uint8Array({ maxLength: 40 }), fc.boolean(), (a, tail, v2) => {
        const h = v2 ? encodeProxyV2(a) : encodeProxyV1(a)
        const d = decodeProxyHeader(Buffer.concat([h, tail]))
        assert.equal(d.state, 'header')
        if (d.state !== 'header') return
        assert.equal(d.length, h.length)
        assert.deepEqual(d.addresses, { ...a })
      }),
    )
  })

  it('v1 and v2 round-trip IPv6 addresses', () => {
    const a: ProxyAddresses = { source: '2001:db8::5', dest: '::1', sourcePort: 50000, destPort: 5432 }
    for (const h of [encodeProxyV1(a), encodeProxyV2(a)]) {
      const d = decodeProxyHeader(h)
      assert.equal(d.state, 'header')
      assert.deepEqual(d.state === 'header' && d.addresses, a)
    }
    assert.equal(encodeProxyV1(a).toString(), 'PROXY TCP6 2001:db8::5 ::1 50000 5432\r\n')
  })

  it('says partial for every proper prefix of a header, never header or absent (property)', () => {
    fc.assert(
      fc.property(v4Pair, fc.boolean(), (a, v2) => {
        const h = v2 ? encodeProxyV2(a) : encodeProxyV1(a)
        for (let n = 1; n < h.length; n++)
          assert.equal(decodeProxyHeader(h.subarray(0, n)).state, 'partial', `${n}`)
      }),
    )
  })

  it('never throws on random bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, sig) => {
        const b = sig ? Buffer.concat([V2_SIGNATURE, bytes]) : Buffer.from(bytes)
        const d = decodeProxyHeader(b)
        assert.ok(['partial', 'absent', 'invalid', 'header'].includes(d.state))
      }),
    )
  })

  it('LOCAL and UNKNOWN carry no address; malformed headers are invalid; other bytes are absent', () => {
    assert.deepEqual(decodeProxyHeader(Buffer.from('PROXY UNKNOWN\r\n')), {
      state: 'header',
      version: 1,
      length: 15,
      addresses: null,
    })
    const local = encodeProxyV2(null)
    assert.deepEqual(decodeProxyHeader(local), { state: 'header', version: 2, length: 16, addresses: null })
    for (const bad of [
      'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n',
      'PROXY TCP4 ::1 5.6.7.8 1 2\r\n',
      'PROXY TCP4 1.2.3.4 5.6.7.8 1 70000\r\n',
      'PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n',
      `PROXY TCP4 ${'1'.repeat(120)}`,
    ]) {
      assert.equal(decodeProxyHeader(Buffer.from(bad)).state, 'invalid', bad)
    }
    const wrongVersion = Buffer.from(local)
    wrongVersion[12] = 0x10
    assert.equal(decodeProxyHeader(wrongVersion).state, 'invalid')
    assert.equal(decodeProxyHeader(Buffer.from([0, 0, 0, 8, 4, 210, 22, 47])).state, 'absent')
    assert.equal(decodeProxyHeader(Buffer.from('GET / HTTP/1.1\r\n')).state, 'absent')
  })

  it('spots a forged header in a first chunk, not other protocols', () => {
    assert.equal(looksLikeProxyHeader(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n')), true)
    assert.equal(looksLikeProxyHeader(encodeProxyV2(null)), true)
    assert.equal(looksLikeProxyHeader(Buffer.from('PROPFIND / HTTP/1.1')), false)
    assert.equal(looksLikeProxyHeader(Buffer.from([0, 0, 0, 8, 4, 210, 22, 47])), false)
    assert.equal(looksLikeProxyHeader(Buffer.from('P')), false)
  })
})
