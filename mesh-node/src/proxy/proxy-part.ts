import type { ClusterConfig, ListenerConfig } from '@pgmesh/protocol'
import type { Reconfigurable } from '../core/contracts.js'
import type { ProxyService } from './proxy-service.js'

/** The cluster's listeners with this node's own bind addresses (`node.listenerBinds`). */
export function listenerConfigs(
  c: ClusterConfig,
  binds: Readonly<Record<string, ListenerConfig['bind']>>,
): ListenerConfig[] {
  return c.listeners.map((l) => {
    const bind = binds[l.name]
    return bind === undefined ? l : { ...l, bind }
  })
}

/**
 * The proxy as a config part: listeners start, change and stop live, established sessions kept.
 * A listener that cannot start (its port in use) refuses the version; giving the previous config
 * back closes what the refused one opened.
 */
export function proxyPart(
  proxy: ProxyService,
  binds: Readonly<Record<string, ListenerConfig['bind']>>,
): Reconfigurable {
  return {
    name: 'proxy',
    async reconfigure(next) {
      const r = await proxy.apply(listenerConfigs(next, binds))
      if (r.failed.length > 0)
        throw new Error(r.failed.map((f) => `listener ${f.name}: ${f.error}`).join('; '))
    },
  }
}
