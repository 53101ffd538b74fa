import {
  type ClusterConfig,
  type ConfigMessage,
  type ConfigPutBody,
  type ConfigPutResponse,
  type ConfigView,
  type Heartbeat,
  newerConfig,
  ok,
  type Result,
} from '@pgmesh/protocol'
import type { Changes, Clock, HeartbeatContributor, HeartbeatFields } from '../core/contracts.js'
import type { GossipBus } from '../gossip/gossip-bus.js'
import type { Logger } from '../log.js'
import type { ConfigApplier } from './config-applier.js'
import type { ConfigStore } from './config-store.js'
import { ConfigSync, type RunningConfig } from './config-sync.js'

/** A member seen on an older config version gets ours at most this often. */
const CONFIG_RESEND_MS = 1_000

export interface ConfigServiceDeps {
  readonly self: string
  readonly initial: RunningConfig
  readonly fileHash: string | null
  readonly store: ConfigStore
  readonly maxMessageBytes: number
  readonly clock: Clock
  readonly logger: Logger
  readonly changes: Changes
  readonly bus: Pick<GossipBus, 'publish' | 'drop'>
  readonly applier: ConfigApplier
  /** this node's own allowances (node.allow): a version naming anything else is refused here */
  readonly admit?: (parsed: ClusterConfig) => Result<void>
}

/**
 * One cluster config everywhere: versions made here (API, SIGHUP) or offered by peers go through
 * ConfigSync, are applied by the applier, and are sent to every member seen on an older version.
 */
export class ConfigService implements HeartbeatContributor {
  readonly sync: ConfigSync
  readonly #d: ConfigServiceDeps
  #sentAt = Number.NEGATIVE_INFINITY

  constructor(d: ConfigServiceDeps) {
    this.#d = d
    d.applier.begin(d.initial)
    this.sync = new ConfigSync({
      self: d.self,
      initial: d.initial,
      fileHash: d.fileHash,
      store: d.store,
      logger: d.logger,
      maxMessageBytes: d.maxMessageBytes,
      ...(d.admit === undefined ? {} : { admit: d.admit }),
      apply: async (next) => {
        await d.applier.apply(next)
        d.changes.emit('config')
      },
    })
  }

  heartbeatFields(): HeartbeatFields {
    const s = this.sync.current.stamp
    return { configVersion: s.version, ...(s.version > 0 ? { configHash: s.hash } : {}) }
  }

  /** A config message from a peer. */
  offered(msg: ConfigMessage, from: string): void {
    const r = this.sync.offer(msg.config, msg.node)
    if (!r.ok) this.#d.bus.drop(r.error.code, from, r.error.message, 'warn')
  }

  /** A heartbeat shows the sender's config version: one older than ours gets ours. */
  compare(hb: Heartbeat): void {
    const mine = this.sync.current.stamp
    if (mine.version === 0) return
    const theirs = { version: hb.configVersion, hash: hb.configHash ?? '' }
    if (theirs.version === mine.version && theirs.hash === mine.hash) return
    if (newerConfig(mine, theirs) === mine) void this.send()
  }

  /** `GET /v1/config` */
  view(): ConfigView {
    const error = this.#d.applier.error
    return {
      ...this.sync.versioned(),
      pendingRestart: this.#d.applier.pendingRestart(),
      conflicts: this.sync.conflicts().map((c) => ({ ...c })),
      ...(error === undefined ? {} : { applyError: { ...error } }),
    }
  }

  /** `PUT /v1/config`: a new version made here, sent to every node, applied here before answering. */
  async put(body: ConfigPutBody): Promise<Result<ConfigPutResponse>> {
    const r = this.sync.edit(body.cluster, 'api', body.baseVersion)
    if (!r.ok) return r
    await this.#afterEdit()
    return ok({ version: r.value.stamp.version, hash: r.value.stamp.hash })
  }

  /**
   * The config file's cluster section, re-read (SIGHUP, or a file changed while the node was down):
   * when it changed since it was last read, it is a new cluster config version for every node.
   */
  async reloadFile(input: Record<string, unknown>): Promise<Result<RunningConfig | null>> {
    const r = this.sync.fileChanged(input)
    if (r.ok && r.value !== null) await this.#afterEdit()
    return r
  }

  settled(): Promise<void> {
    return this.sync.settled()
  }

  async send(): Promise<void> {
    const now = this.#d.clock.mono()
    if (this.sync.current.stamp.version === 0 || now - this.#sentAt < CONFIG_RESEND_MS) return
    this.#sentAt = now
    await this.#d.bus.publish({ kind: 'config', config: this.sync.versioned() })
  }

  async #afterEdit(): Promise<void> {
    await this.sync.settled()
    this.#sentAt = Number.NEGATIVE_INFINITY
    await this.send()
    this.#d.changes.emit('config')
  }
}
