import {
  type ClusterConfig,
  type ConfigStamp,
  err,
  type Issue,
  MAX_CONFIG_DEPTH,
  MAX_CONFIG_VERSION_JUMP,
  newerConfig,
  ok,
  pgmeshError,
  type Result,
  type VersionedConfig,
  validateClusterConfig,
  validatePeerClusterConfig,
  valueTooDeep,
} from '@pgmesh/protocol'
import type { Logger } from '../log.js'
import { canonicalJson, configHash } from './config-hash.js'
import type { ConfigStore } from './config-store.js'

/** A cluster config version as this node runs it. */
export interface RunningConfig {
  readonly stamp: ConfigStamp
  readonly input: Record<string, unknown>
  readonly parsed: ClusterConfig
}

export interface ConfigConflict {
  readonly lost: ConfigStamp
  readonly to: ConfigStamp
  readonly seenAt: string
}

export interface ConfigSyncOptions {
  readonly self: string
  readonly initial: RunningConfig
  /** hash of the config file's cluster section as last read (a changed file is an edit) */
  readonly fileHash: string | null
  readonly store: ConfigStore
  readonly logger: Logger
  /** largest gossip message: a config that cannot travel is refused up front */
  readonly maxMessageBytes: number
  readonly now?: () => Date
  /** applies a newly adopted config; called one at a time, in adoption order */
  readonly apply: (next: RunningConfig, prev: RunningConfig) => Promise<void>
  /**
   * What this node's own config allows (`checkClusterAgainstLocal` over node.allow): a version it
   * refuses is neither adopted from a peer nor made by an edit here. Absent: everything valid is.
   */
  readonly admit?: (parsed: ClusterConfig) => Result<void>
}

const MAX_CONFLICTS = 10

function tooDeep(): Result<never> {
  return err(
    pgmeshError('CONFIG_INVALID', 'the cluster config is too deep', [
      { path: 'cluster', message: `nests deeper than ${MAX_CONFIG_DEPTH} levels` },
    ]),
  )
}
/** room for the gossip envelope and the stamp around the cluster section */
const ENVELOPE_BYTES = 1_024

/**
 * The cluster config this node runs, and the rule every node applies to reach the same one:
 * the higher version wins; the same version with another hash is a conflict the lower hash wins,
 * reported (logged and kept for `GET /v1/config`), never merged.
 */
export class ConfigSync {
  readonly #o: ConfigSyncOptions
  readonly #log: Logger
  #current: RunningConfig
  #fileHash: string | null
  readonly #conflicts: ConfigConflict[] = []
  #applying: Promise<void> = Promise.resolve()

  constructor(o: ConfigSyncOptions) {
    this.#o = o
    this.#log = o.logger.child({ component: 'config' })
    this.#current = o.initial
    this.#fileHash = o.fileHash
  }

  get current(): RunningConfig {
    return this.#current
  }

  conflicts(): readonly ConfigConflict[] {
    return this.#conflicts
  }

  versioned(): VersionedConfig {
    return { ...this.#current.stamp, cluster: this.#current.input }
  }

  /** Resolves once every adopted version so far has been applied. */
  settled(): Promise<void> {
    return this.#applying
  }

  /**
   * Checks a cluster section as an edit of the running config would; every problem listed. An
   * operator's input (API, file) is strict about unknown fields; a peer's version may come from a
   * newer pgmesh, so its unknown fields are dropped from what runs here (and logged) while the input
   * is kept as it is: the version's hash, and what this node passes on, stay the same.
   */
  check(
    input: unknown,
    from: 'operator' | 'peer' = 'operator',
  ): Result<{ parsed: ClusterConfig; input: Record<string, unknown> }> {
    // before validation and hashing, which both walk the whole document
    if (valueTooDeep(input, MAX_CONFIG_DEPTH)) return tooDeep()
    let r: Result<ClusterConfig>
    if (from === 'operator') r = validateClusterConfig(input)
    else {
      const peer = validatePeerClusterConfig(input)
      if (peer.ok && peer.value.ignored.length > 0) {
        this.#log.warn(
          { ignored: peer.value.ignored },
          'the cluster config has fields this pgmesh version does not know (made by a newer node?): running it without them',
        )
      }
      r = peer.ok ? ok(peer.value.config) : peer
    }
    if (!r.ok) return r
    const doc = input as Record<string, unknown>
    const issues: Issue[] = []
    if (r.value.name !== this.#current.parsed.name) {
      issues.push({
        path: 'cluster.name',
        message: `cannot change in a running cluster (it is "${this.#current.parsed.name}"): nodes of another name do not hear each other`,
      })
    }
    const bytes = Buffer.byteLength(canonicalJson(doc)) + ENVELOPE_BYTES
    if (bytes > this.#o.maxMessageBytes) {
      issues.push({
        path: 'cluster',
        message: `is ${bytes} bytes as a gossip message; cluster.gossip.maxMessageBytes allows ${this.#o.maxMessageBytes}`,
      })
    }
    if (issues.length > 0) {
      return err(pgmeshError('CONFIG_INVALID', `the cluster config has ${issues.length} problem(s)`, issues))
    }
    const admitted = this.#o.admit?.(r.value)
    if (admitted !== undefined && !admitted.ok) return admitted
    return ok({ parsed: r.value, input: doc })
  }

  /**
   * An edit made on this node: the running version + 1. `baseVersion`, when given, must be the
   * running version (optimistic concurrency: nothing is merged). The same content as the running
   * config is not a new version.
   */
  edit(input: unknown, source: 'api' | 'reload', baseVersion?: number): Result<RunningConfig> {
    const cur = this.#current
    if (cur.stamp.version === 0) {
      return err(
        pgmeshError(
          'CONFIG_CONFLICT',
          'this node has not received the cluster config from the mesh yet: edit it on a member that has',
        ),
      )
    }
    if (baseVersion !== undefined && baseVersion !== cur.stamp.version) {
      return err(
        pgmeshError(
          'CONFIG_CONFLICT',
          `the edit was made on version ${baseVersion}, but version ${cur.stamp.version} (from ${cur.stamp.origin}) is current: get it and edit again`,
        ),
      )
    }
    const checked = this.check(input)
    if (!checked.ok) return checked
    const hash = configHash(checked.value.input)
    if (hash === cur.stamp.hash && cur.stamp.version > 0) return ok(cur)
    if (cur.stamp.version >= Number.MAX_SAFE_INTEGER) {
      return err(
        pgmeshError('CONFIG_CONFLICT', `version ${cur.stamp.version} is the last one a version can count to`),
      )
    }
    const next: RunningConfig = {
      stamp: {
        version: cur.stamp.version + 1,
        hash,
        origin: this.#o.self,
        source,
        at: (this.#o.now ?? (() => new Date()))().toISOString(),
      },
      input: checked.value.input,
      parsed: checked.value.parsed,
    }
    this.#adopt(next, `${source} edit`)
    return ok(next)
  }

  /** A config file re-read on SIGHUP: an edit only when the file changed since it was last read. */
  fileChanged(input: Record<string, unknown>): Result<RunningConfig | null> {
    if (valueTooDeep(input, MAX_CONFIG_DEPTH)) return tooDeep()
    const hash = configHash(input)
    if (hash === this.#fileHash) return ok(null)
    if (this.#current.stamp.version === 0) {
      // not in the mesh's config yet: the file stays this node's stand-in until it arrives
      const checked = this.check(input)
      if (!checked.ok) return checked
      this.#fileHash = hash
      const next: RunningConfig = {
        stamp: { ...this.#current.stamp, hash, at: (this.#o.now ?? (() => new Date()))().toISOString() },
        ...checked.value,
      }
      this.#adopt(next, 'file reload before the mesh config arrived')
      return ok(next)
    }
    // set before the edit's queued save runs, so the stored state carries it
    const previous = this.#fileHash
    this.#fileHash = hash
    const r = this.edit(input, 'reload')
    if (!r.ok) this.#fileHash = previous
    return r
  }

  /** A version from a peer: adopted when it wins, a conflict recorded when it collides. */
  offer(v: VersionedConfig, from: string): Result<'adopted' | 'same' | 'older'> {
    const cur = this.#current.stamp
    if (v.version === cur.version && v.hash === cur.hash) return ok('same')
    if (v.version - cur.version > MAX_CONFIG_VERSION_JUMP) {
      // a counter near 2^53 would freeze edits: the next one overflows and every peer refuses it
      return err(
        pgmeshError(
          'GOSSIP_CONFIG_INVALID',
          `config version ${v.version} from ${from} is more than ${MAX_CONFIG_VERSION_JUMP} ahead of ${cur.version}`,
        ),
      )
    }
    if (valueTooDeep(v.cluster, MAX_CONFIG_DEPTH)) {
      return err(
        pgmeshError(
          'GOSSIP_CONFIG_INVALID',
          `config version ${v.version} from ${from} nests deeper than ${MAX_CONFIG_DEPTH} levels`,
        ),
      )
    }
    if (configHash(v.cluster) !== v.hash) {
      return err(
        pgmeshError('GOSSIP_CONFIG_INVALID', `config version ${v.version} from ${from}: hash mismatch`),
      )
    }
    const winner = newerConfig(v, cur)
    if (winner === cur) {
      if (v.version === cur.version) this.#conflict(v, cur)
      return ok('older')
    }
    const checked = this.check(v.cluster, 'peer')
    if (!checked.ok && checked.error.code === 'CONFIG_NOT_ALLOWED') {
      // counted under its own code: a peer asked for what this node's config does not allow
      return err(
        pgmeshError(
          'CONFIG_NOT_ALLOWED',
          `config version ${v.version} from ${from} is refused here: ${checked.error.issues?.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
          checked.error.issues,
        ),
      )
    }
    if (!checked.ok) {
      return err(
        pgmeshError(
          'GOSSIP_CONFIG_INVALID',
          `config version ${v.version} from ${from} is not valid here: ${checked.error.issues?.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
        ),
      )
    }
    if (v.version === cur.version && cur.version > 0) this.#conflict(cur, v)
    const { cluster: _input, ...stamp } = v
    this.#adopt({ stamp, input: checked.value.input, parsed: checked.value.parsed }, `from ${from}`)
    return ok('adopted')
  }

  #adopt(next: RunningConfig, why: string): void {
    const prev = this.#current
    this.#current = next
    this.#log.info(
      {
        version: next.stamp.version,
        hash: next.stamp.hash.slice(0, 12),
        origin: next.stamp.origin,
        source: next.stamp.source,
        previous: prev.stamp.version,
      },
      `running cluster config version ${next.stamp.version} (${why})`,
    )
    // persisted before it is applied: a crash in between restarts on the new version
    this.#applying = this.#applying
      .then(() => this.#save())
      .catch((e: unknown) => {
        this.#log.error({ err: (e as Error).message, version: next.stamp.version }, 'cannot store the config')
      })
      .then(() => this.#o.apply(next, prev))
      .catch((e: unknown) => {
        this.#log.error(
          { err: (e as Error).message, version: next.stamp.version },
          'applying the config failed',
        )
      })
  }

  #conflict(lost: ConfigStamp, to: ConfigStamp): void {
    if (this.#conflicts.some((c) => c.lost.hash === lost.hash && c.lost.version === lost.version)) return
    const c: ConfigConflict = {
      lost: { ...lost },
      to: { ...to },
      seenAt: (this.#o.now ?? (() => new Date()))().toISOString(),
    }
    this.#conflicts.unshift(c)
    this.#conflicts.length = Math.min(this.#conflicts.length, MAX_CONFLICTS)
    this.#log.warn(
      {
        lost: lost.hash.slice(0, 12),
        lostOrigin: lost.origin,
        won: to.hash.slice(0, 12),
        wonOrigin: to.origin,
      },
      `two edits made version ${lost.version} at once: the edit from ${lost.origin} lost to the one from ${to.origin} and is not applied; re-apply it on top of version ${to.version} if it is still wanted`,
    )
  }

  async #save(): Promise<void> {
    await this.#o.store.save({ config: this.versioned(), fileHash: this.#fileHash })
  }
}

/**
 * Which config a starting node runs: its stored version when it has one, else its file (version 1
 * on a founding node, 0 on a joining one, which runs it only until the mesh's arrives). A file that
 * differs from the stored version is not applied at start: an old file on a node that was down must
 * not undo the cluster's edits; SIGHUP or `pgmesh config apply` makes a file the next version.
 */
export function initialConfig(args: {
  readonly self: string
  readonly file: { readonly input: Record<string, unknown>; readonly parsed: ClusterConfig }
  readonly stored: { readonly config: VersionedConfig; readonly fileHash: string | null } | null
  readonly founding: boolean
  readonly now: Date
}): { running: RunningConfig; fileHash: string | null; note: string | null } {
  const fileHash = configHash(args.file.input)
  const fromFile = (note: string | null) => ({
    running: {
      stamp: {
        version: args.founding ? 1 : 0,
        hash: fileHash,
        origin: args.self,
        source: 'file' as const,
        at: args.now.toISOString(),
      },
      input: args.file.input,
      parsed: args.file.parsed,
    },
    fileHash,
    note,
  })
  const s = args.stored
  if (s === null) return fromFile(null)
  // stored by this node, maybe while it ran a newer pgmesh (a downgrade): unknown fields dropped
  const peer = validatePeerClusterConfig(s.config.cluster)
  const checked = peer.ok ? ok(peer.value.config) : peer
  if (!checked.ok || checked.value.name !== args.file.parsed.name) {
    return fromFile(
      'the stored cluster config is not valid here or names another cluster: starting from the file',
    )
  }
  const { cluster: input, ...stamp } = s.config
  const note =
    fileHash === stamp.hash || fileHash === s.fileHash
      ? null
      : `the config file's cluster section differs from the stored cluster config version ${stamp.version}: running version ${stamp.version} (send SIGHUP to make the file the next version, or use pgmesh config apply)`
  // the file as read now is the baseline a later SIGHUP compares against
  return { running: { stamp, input, parsed: checked.value }, fileHash, note }
}
