import { formatError, type VipConfig, VipConfigSchema } from '@pgmesh/protocol'
import { fileConfigStore } from '../config-sync/config-store.js'
import { loadConfig, type StartOverrides } from '../load-config.js'
import { createLogger } from '../log.js'
import { createVipDriver } from '../vip/vip-driver.js'

/**
 * `pgmesh vip cleanup`: what a node that did not stop cleanly (kill -9, OOM, a crash) leaves on
 * its interface — the VIP address, its nftables fence and the hand-over block — removed, as a
 * restarted node would at start. systemd runs it as ExecStopPost. The VIP is the config file's
 * and the one the node last ran (a live edit may have moved it since the file was written).
 */
export async function runVipCleanup(configFile: string | undefined, flags: StartOverrides): Promise<number> {
  const loaded = await loadConfig(configFile, flags, process.cwd())
  if (!loaded.ok) {
    process.stderr.write(`pgmesh: ${formatError(loaded.error)}\n`)
    return 2
  }
  const { node, cluster } = loaded.value
  const logger = createLogger(node.logLevel, node.id)
  const log = logger.child({ component: 'vip' })
  const configs: VipConfig[] = [cluster.vip]
  const stored = await fileConfigStore(node.dataDir!).load()
  if (stored.ok && stored.value !== null) {
    const v = VipConfigSchema.safeParse(stored.value.config.cluster.vip ?? {})
    if (v.success && v.data.address?.cidr !== cluster.vip.address?.cidr) configs.push(v.data)
  }
  let failed = 0
  for (const config of configs) {
    if (config.driver !== 'linux' || config.address === undefined) continue
    // no notify scripts: a stop script already ran (or the node was killed before it could)
    const driver = createVipDriver({
      config: { ...config, notify: { timeoutMs: config.notify.timeoutMs } },
      iface: node.vip.interface,
      node: node.id,
      logger,
    })
    try {
      await driver.start()
    } catch (e) {
      failed++
      log.error(
        { code: 'VIP_COMMAND_FAILED', vip: config.address.cidr, err: (e as Error).message },
        'cleanup failed',
      )
    } finally {
      await driver.stop()
    }
  }
  if (failed === 0) log.info({ vips: configs.map((c) => c.address?.cidr ?? null) }, 'VIP cleanup done')
  return failed === 0 ? 0 : 1
}
