import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { VipConfigSchema } from './vip.js'

describe('cluster.vip', () => {
  it('fence, address lifetime and acquire retries have their documented defaults', () => {
    const v = VipConfigSchema.parse({ driver: 'linux', address: '198.18.0.100/24' })
    assert.equal(v.fence, true)
    assert.equal(v.fenceMarginMs, 10)
    assert.equal(v.addressLifetimeMs, 3000)
    assert.equal(v.acquireRetryMs, 100)
    assert.equal(v.acquireRetryMaxMs, 1000)
    assert.equal(v.acquireAttempts, 4)
    assert.equal(v.acquireFaultMs, 10000)
    assert.equal(v.secondAddress, undefined)
  })

  it('a dual-stack pair: the second VIP is of the other family, with the linux driver', () => {
    const v = VipConfigSchema.parse({
      driver: 'linux',
      address: '198.18.0.100/24',
      secondAddress: 'fd00::100/64',
    })
    assert.equal(v.secondAddress?.family, 'ipv6')
    const same = VipConfigSchema.safeParse({
      driver: 'linux',
      address: '198.18.0.100/24',
      secondAddress: '198.18.0.101/24',
    })
    assert.ok(!same.success)
    assert.match(same.error.issues[0]!.message, /other family/)
    assert.ok(
      !VipConfigSchema.safeParse({
        driver: 'none',
        address: '198.18.0.100/24',
        secondAddress: 'fd00::100/64',
      }).success,
    )
    assert.ok(!VipConfigSchema.safeParse({ driver: 'linux', secondAddress: 'fd00::100/64' }).success)
  })
})
