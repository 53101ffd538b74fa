import { createControlApi } from '@pgmesh/control-api'
import { formatError, formatHostPort } from '@pgmesh/protocol'
import { resolveApiPolicy } from '../api-policy.js'
import { startApiServer } from '../api-server.js'
import { ApiTokens } from '../api-tokens.js'
import { fileConfigStore } from '../config-sync/config-store.js'
import { initialConfig } from '../config-sync/config-sync.js'
import { fileElectionStore } from '../election/election-store.js'
import { type LoadedConfig, loadConfig, type StartOverrides } from '../load-config.js'
import { LocalPolicy } from '../local-policy.js'
import { createLogger, type Logger, RateLimitedLog } from '../log.js'
import { filePeerPinStore } from '../membership/peer-directory.js'
import { MeshNode } from '../mesh-node.js'
import { loadNodeIdentity } from '../node-identity.js'
import { fileMaintenanceStore } from '../operator/maintenance.js'
import { loadSecret } from '../secret.js'
import { packageVersion } from '../version.js'
import { EarlySignals } from './early-signals.js'

/** How long a graceful stop may take before the process exits anyway. */
/** after an uncaught exception, the most the VIP hand-over may take before the process exits */
const FATAL_STOP_MS = 2_000
const STOP_TIMEOUT_MS = 10_000

const WILDCARDS = new Set(['0.0.0.0', '::'])

/** A client refused by the API server is logged at most this often per address and reason. */
const REFUSAL_LOG_INTERVAL_MS = 10_000

/** Runs a node until SIGTERM/SIGINT. Resolves with the process exit code. */
export async function runStart(configFile: string | undefined, flags: StartOverrides): Promise<number> {
  const loaded = await loadConfig(configFile, flags, process.cwd())
  if (!loaded.ok) {
    process.stderr.write(`pgmesh: ${formatError(loaded.error)}\n`)
    return 2
  }
  const config = loaded.value
  // what this node allows the cluster config; the file's own cluster section must fit it (its
  // programs are allowed by being written there; its addresses must be in the allowed networks)
  const localPolicy = new LocalPolicy({ allow: config.node.allow, fileCluster: config.cluster })
  const allowed = localPolicy.admit(config.cluster)
  if (!allowed.ok) {
    process.stderr.write(`pgmesh: ${formatError(allowed.error)}\n`)
    return 2
  }
  const logger = createLogger(config.node.logLevel, config.node.id)
  const log = logger.child({ component: 'main' })
  const early = new EarlySignals()
  try {
    return await runNode(configFile, flags, config, logger, log, early, localPolicy)
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
  localPolicy: LocalPolicy,
): Promise<number> {
  let psk: Uint8Array | undefined
  if (config.node.secretFile !== undefined) {
    const s = await loadSecret(config.node.secretFile)
    if (!s.ok) {
      process.stderr.write(`pgmesh: ${formatError(s.error)}\n`)
      return 2
    }
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
  const starting = (fromStore: boolean) =>
    initialConfig({
      self: config.node.id,
      file: { input: config.clusterInput, parsed: config.cluster },
      stored: fromStore && stored.ok ? stored.value : null,
      founding: config.node.join.length === 0 || config.cluster.members.some((m) => m.id === config.node.id),
      now: new Date(),
    })
  let start = starting(true)
  // a stored version from the mesh that this node's allowances (perhaps tightened since) refuse
  // is not run: the file is, which fits them (checked above)
  const storedAllowed = localPolicy.admit(start.running.parsed)
  if (!storedAllowed.ok) {
    log.error(
      {
        code: storedAllowed.error.code,
        issues: storedAllowed.error.issues,
        version: start.running.stamp.version,
      },
      `the stored cluster config version ${start.running.stamp.version} asks for what node.allow does not allow here: starting from the file`,
    )
    start = starting(false)
  }
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
    peerStore: filePeerPinStore(config.node.dataDir!),
    localPolicy,
  })
  const policy = resolveApiPolicy(config.node.api)
  if (!policy.ok) {
    process.stderr.write(`pgmesh: ${formatError(policy.error)}\n`)
    return 2
  }
  const tokens = new ApiTokens(config.node.api.tokensFile, policy.value.protectReads)
  const loadedTokens = await tokens.reload()
  if (!loadedTokens.ok) {
    process.stderr.write(`pgmesh: ${formatError(loadedTokens.error)}\n`)
    return 2
  }
  const app = createControlApi({
    source: node.api,
    auth: tokens,
    onError: (e) => logger.child({ component: 'api' }).error({ err: e }, 'API handler failed'),
  })

  let api: Awaited<ReturnType<typeof startApiServer>>
  try {
    const apiLog = logger.child({ component: 'api' })
    const refusals = new RateLimitedLog(REFUSAL_LOG_INTERVAL_MS)
    api = await startApiServer(app, config.node.api.listen, {
      auth: tokens,
      allowedHosts: policy.value.allowedHosts,
      limits: policy.value.limits,
      onRefused: (reason, remote) => {
        const suppressed = refusals.shouldLog(`${remote}/${reason}`, performance.now())
        if (suppressed !== null)
          apiLog.warn({ reason, remote, suppressed }, 'API request refused before any route')
      },
    })
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
        localPolicy.set({ allow: next.value.node.allow, fileCluster: next.value.cluster })
        const reloaded = await tokens.reload()
        if (!reloaded.ok)
          log.error({ code: reloaded.error.code }, `API tokens kept: ${formatError(reloaded.error)}`)
        // certificates rotate on disk: new connections get the new ones, sessions keep theirs
        for (const f of await node.reloadTls()) {
          log.error({ listener: f.name, code: 'TLS_MATERIAL_INVALID' }, `certificate kept: ${f.error}`)
        }
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
    // the last resort: an error no handler caught still releases the VIP (a graceful stop hands
    // it over first) before the process exits for systemd to restart it
    process.once('uncaughtException', (e) => {
      log.fatal(
        { code: 'PROCESS_FATAL', err: e.message, stack: e.stack },
        'uncaught exception: releasing the VIP and exiting',
      )
      const bound = setTimeout(() => resolveExit(1), FATAL_STOP_MS)
      node
        .stop()
        .catch(() => undefined)
        .finally(() => {
          clearTimeout(bound)
          resolveExit(1)
        })
    })
  })
}
