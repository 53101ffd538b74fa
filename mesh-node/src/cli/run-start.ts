import { createControlApi } from '@pgmesh/control-api'
import { formatError, formatHostPort } from '@pgmesh/protocol'
import { startApiServer } from '../api-server.js'
import { ApiTokens } from '../api-tokens.js'
import { fileConfigStore } from '../config-sync/config-store.js'
import { initialConfig } from '../config-sync/config-sync.js'
import { fileElectionStore } from '../election/election-store.js'
import { type LoadedConfig, loadConfig, type StartOverrides } from '../load-config.js'
import { createLogger, type Logger } from '../log.js'
import { MeshNode } from '../mesh-node.js'
import { loadNodeIdentity } from '../node-identity.js'
import { fileMaintenanceStore } from '../operator/maintenance.js'
import { loadSecret } from '../secret.js'
import { packageVersion } from '../version.js'
import { EarlySignals } from './early-signals.js'

/** How long a graceful stop may take before the process exits anyway. */
const STOP_TIMEOUT_MS = 10_000

const WILDCARDS = new Set(['0.0.0.0', '::'])

/** Runs a node until SIGTERM/SIGINT. Resolves with the process exit code. */
export async function runStart(configFile: string | undefined, flags: StartOverrides): Promise<number> {
  const loaded = await loadConfig(configFile, flags, process.cwd())
  if (!loaded.ok) {
    process.stderr.write(`pgmesh: ${formatError(loaded.error)}\n`)
    return 2
  }
  const config = loaded.value
  const logger = createLogger(config.node.logLevel, config.node.id)
  const log = logger.child({ component: 'main' })
  const early = new EarlySignals()
  try {
    return await runNode(configFile, flags, config, logger, log, early)
  } finally {
    early.release()
  }
}

async function runNode(
  configFile: string | undefined,
  flags: StartOverrides,
  config: LoadedConfig,
  logger: Logger,
  log: Logger,
  early: EarlySignals,
): Promise<number> {
  let psk: Uint8Array | undefined
  if (config.node.secretFile !== undefined) {
    const s = await loadSecret(config.node.secretFile)
    if (!s.ok) {
      process.stderr.write(`pgmesh: ${formatError(s.error)}\n`)
      return 2
    }
    if (s.value.looseMode)
      log.warn(
        { file: config.node.secretFile },
        'the cluster secret file is readable by group or others; chmod 600 it',
      )
    psk = s.value.psk
  } else {
    log.warn('INSECURE DEV MODE: no cluster secret; anyone who can reach the gossip port can join this mesh')
  }

  const identity = await loadNodeIdentity(config.node.dataDir!, Date.now())
  if (!identity.ok) {
    process.stderr.write(`pgmesh: ${formatError(identity.error)}\n`)
    return 2
  }

  const configStore = fileConfigStore(config.node.dataDir!)
  const stored = await configStore.load()
  if (!stored.ok)
    log.error({ code: stored.error.code }, `${formatError(stored.error)}; starting from the file`)
  const start = initialConfig({
    self: config.node.id,
    file: { input: config.clusterInput, parsed: config.cluster },
    stored: stored.ok ? stored.value : null,
    founding: config.node.join.length === 0 || config.cluster.members.some((m) => m.id === config.node.id),
    now: new Date(),
  })
  if (start.note !== null) log.warn(start.note)
  const s0 = start.running.stamp
  log.info(
    { version: s0.version, hash: s0.hash.slice(0, 12), origin: s0.origin, source: s0.source },
    s0.version === 0
      ? "running the file's cluster config until the mesh's arrives"
      : `starting on cluster config version ${s0.version}`,
  )
  const node = new MeshNode({
    config: { ...config, cluster: start.running.parsed },
    clusterConfig: {
      initial: start.running,
      fileHash: start.fileHash,
      store: configStore,
    },
    identity: identity.value,
    psk,
    logger,
    version: packageVersion(),
    electionStore: fileElectionStore(config.node.dataDir!),
    maintenanceStore: fileMaintenanceStore(config.node.dataDir!),
  })
  const tokens = new ApiTokens(config.node.api.tokensFile, config.node.api.protectReads)
  const loadedTokens = await tokens.reload()
  if (!loadedTokens.ok) {
    process.stderr.write(`pgmesh: ${formatError(loadedTokens.error)}\n`)
    return 2
  }
  const app = createControlApi({
    source: node,
    auth: tokens,
    onError: (e) => logger.child({ component: 'api' }).error({ err: e }, 'API handler failed'),
  })

  let api: Awaited<ReturnType<typeof startApiServer>>
  try {
    api = await startApiServer(app, config.node.api.listen)
  } catch (e) {
    process.stderr.write(
      `pgmesh: cannot listen for the API on ${formatHostPort(config.node.api.listen)}: ${(e as Error).message}\n`,
    )
    return 1
  }
  const advertisedHost = WILDCARDS.has(api.address.host)
    ? (config.node.gossip.advertise?.host ?? null)
    : api.address.host
  node.setApiAddress(
    advertisedHost === null ? null : formatHostPort({ host: advertisedHost, port: api.address.port }),
  )
  log.info(
    { api: formatHostPort(api.address), dataDir: config.node.dataDir, priority: config.node.priority },
    'control API listening',
  )

  try {
    await node.start()
  } catch (e) {
    log.fatal({ err: (e as Error).message }, 'cannot start the node')
    await api.close()
    return 1
  }
  const reloadClusterFile = async (input: Record<string, unknown>) => {
    const r = await node.reloadClusterFile(input)
    if (!r.ok) {
      log.error(
        { code: r.error.code, issues: r.error.issues },
        `the file's cluster section is not applied: ${formatError(r.error)}`,
      )
    } else if (r.value !== null) {
      log.info(
        { version: r.value.stamp.version },
        `the file's cluster section is now cluster config version ${r.value.stamp.version}`,
      )
    }
  }

  return await new Promise<number>((resolveExit) => {
    let stopping = false
    const stop = (signal: string) => {
      if (stopping) {
        log.warn({ signal }, 'second signal: exiting now')
        resolveExit(1)
        return
      }
      stopping = true
      log.info({ signal }, 'stopping: leaving the mesh')
      const timer = setTimeout(() => {
        log.error('graceful stop timed out; exiting')
        resolveExit(1)
      }, STOP_TIMEOUT_MS)
      node
        .stop()
        .then(() => api.close())
        .then(() => {
          clearTimeout(timer)
          resolveExit(0)
        })
        .catch((e: unknown) => {
          log.error({ err: (e as Error).message }, 'error while stopping')
          clearTimeout(timer)
          resolveExit(1)
        })
    }
    const reload = () => {
      // reload: API tokens, and the cluster section when the file changed (a new version for all)
      void loadConfig(configFile, flags, process.cwd()).then(async (next) => {
        if (!next.ok) {
          log.error(
            { code: next.error.code, issues: next.error.issues },
            `reload refused: ${formatError(next.error)}`,
          )
          return
        }
        const reloaded = await tokens.reload()
        if (!reloaded.ok)
          log.error({ code: reloaded.error.code }, `API tokens kept: ${formatError(reloaded.error)}`)
        await reloadClusterFile(next.value.clusterInput)
      })
    }
    process.on('SIGHUP', reload)
    process.on('SIGTERM', () => stop('SIGTERM'))
    process.on('SIGINT', () => stop('SIGINT'))
    // what arrived while the node was starting
    const held = early.release()
    if (held.stop !== null) stop(held.stop)
    else if (held.reload) reload()
    process.on('unhandledRejection', (reason) => {
      log.error(
        { err: reason instanceof Error ? reason.message : String(reason) },
        'unhandled rejection (continuing)',
      )
    })
  })
}
