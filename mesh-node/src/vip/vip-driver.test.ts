import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { VipConfigSchema } from '@pgmesh/protocol'
import { pino } from 'pino'
import { createVipDriver } from './vip-driver.js'

const logger = pino({ level: 'silent' })

describe('createVipDriver', () => {
  it('builds the driver the config names', async () => {
    for (const driver of ['none', 'exec'] as const) {
      const d = createVipDriver({
        config: VipConfigSchema.parse({ driver }),
        iface: undefined,
        node: 'n1',
        logger,
      })
      assert.equal(d.kind, driver)
      await d.stop()
    }
    const linux = createVipDriver({
      config: VipConfigSchema.parse({ driver: 'linux', address: '198.18.0.100/24' }),
      iface: 'eth0',
      node: 'n1',
      logger,
    })
    assert.equal(linux.kind, 'linux')
    assert.equal(linux.holds(), false)
    await linux.stop()
  })

  it('refuses a linux driver without an interface', () => {
    assert.throws(
      () =>
        createVipDriver({
          config: VipConfigSchema.parse({ driver: 'linux', address: '198.18.0.100/24' }),
          iface: undefined,
          node: 'n1',
          logger,
        }),
      /node\.vip\.interface/,
    )
  })
})
