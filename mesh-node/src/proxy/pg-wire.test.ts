import assert from 'node:assert/strict'
import { randomBytes, randomInt } from 'node:crypto'
import { describe, it } from 'node:test'
import {
  classifyFirstPacket,
  errorResponse,
  SSL_REQUEST,
  startupPacket,
  startupParameters,
  withClientAddress,
} from './pg-wire.js'

const KINDS = ['partial', 'direct-tls', 'ssl-request', 'gssenc-request', 'cancel', 'startup', 'invalid']

describe('PostgreSQL edge wire', () => {
  it('tells the first packets apart', () => {
    assert.equal(classifyFirstPacket(SSL_REQUEST, true).kind, 'ssl-request')
    assert.equal(classifyFirstPacket(SSL_REQUEST.subarray(0, 5), true).kind, 'partial')
    assert.equal(classifyFirstPacket(Buffer.from([0x16, 3, 1]), true).kind, 'direct-tls')
    assert.equal(classifyFirstPacket(Buffer.from([0x16, 3, 1]), false).kind, 'invalid')
    const startup = startupPacket([['user', 'u']])
    assert.deepEqual(classifyFirstPacket(startup, false), { kind: 'startup', packet: startup })
    assert.equal(classifyFirstPacket(startup.subarray(0, 10), false).kind, 'partial')
    const oversized = Buffer.alloc(8)
    oversized.writeUInt32BE(1_000_000, 0)
    oversized.writeUInt32BE(196608, 4)
    assert.equal(classifyFirstPacket(oversized, false).kind, 'invalid')
    const badSsl = Buffer.from(SSL_REQUEST)
    badSsl.writeUInt32BE(12, 0)
    assert.equal(classifyFirstPacket(Buffer.concat([badSsl, Buffer.alloc(4)]), false).kind, 'invalid')
    const cancel = Buffer.alloc(16)
    cancel.writeUInt32BE(16, 0)
    cancel.writeUInt32BE(80877102, 4)
    assert.equal(classifyFirstPacket(cancel, false).kind, 'cancel')
  })

  it('never throws on random bytes', () => {
    for (let i = 0; i < 5_000; i++) {
      const bytes = randomBytes(randomInt(65))
      // half of them with a plausible length, so the deeper branches run too
      if (bytes.length >= 4 && i % 2 === 0) bytes.writeUInt32BE(randomInt(8, 80), 0)
      const p = classifyFirstPacket(bytes, i % 3 === 0)
      assert.ok(KINDS.includes(p.kind), p.kind)
      if (p.kind === 'startup') startupParameters(p.packet)
    }
  })

  it('appends the client address to application_name, keeping it within 63 bytes', () => {
    const p = withClientAddress(
      startupPacket([
        ['user', 'u'],
        ['application_name', 'psql'],
      ]),
      '10.0.0.7',
      5123,
    )
    assert.deepEqual(startupParameters(p), [
      ['user', 'u'],
      ['application_name', 'psql - 10.0.0.7:5123'],
    ])
    const none = withClientAddress(startupPacket([['user', 'u']]), '::1', 1)
    assert.deepEqual(startupParameters(none), [
      ['user', 'u'],
      ['application_name', '::1:1'],
    ])
    const long = withClientAddress(startupPacket([['application_name', 'x'.repeat(100)]]), '10.0.0.7', 5123)
    const app = startupParameters(long)![0]![1]
    assert.ok(Buffer.byteLength(app) <= 63, app)
    assert.ok(app.endsWith(' - 10.0.0.7:5123'))
  })

  it('writes an ErrorResponse with severity, SQLSTATE and message', () => {
    const e = errorResponse('28000', 'needs TLS')
    assert.equal(e[0], 0x45)
    assert.equal(e.readUInt32BE(1), e.length - 1)
    assert.equal(e.subarray(5).toString(), 'SFATAL\0VFATAL\0C28000\0Mneeds TLS\0\0')
  })
})
