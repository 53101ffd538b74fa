import type { ClusterConfig, ConfigApplyError } from '@pgmesh/protocol'
import type { Clock, Reconfigurable } from '../core/contracts.js'
import type { Logger } from '../log.js'
import type { RunningConfig } from './config-sync.js'

export interface ConfigApplierDeps {
  /** the parts in the order they take a new version (and in reverse order give it back) */
  readonly parts: readonly Reconfigurable[]
  /** the cluster config the node started on (restart-only settings are compared with it) */
  readonly started: ClusterConfig
  readonly clock: Clock
  readonly logger: Logger
  /** false once the node stops: a version adopted while it stops is not applied */
  readonly active?: () => boolean
}

/**
 * Applies a cluster config version to every part, atomically per node: when a part refuses it (a
 * password file it cannot read, a port in use), the parts that already took it get the previous
 * version back, the node keeps running that one, and the failure is reported (`/v1/config`,
 * `/v1/status`) until a later version applies.
 */
export class ConfigApplier {
  readonly #d: ConfigApplierDeps
  readonly #log: Logger
  #running: ClusterConfig
  #runningVersion = 0
  #error: ConfigApplyError | undefined

  constructor(d: ConfigApplierDeps) {
    this.#d = d
    this.#log = d.logger.child({ component: 'config' })
    this.#running = d.started
  }

  /** The cluster config every part runs now. */
  get running(): ClusterConfig {
    return this.#running
  }

  get runningVersion(): number {
    return this.#runningVersion
  }

  get error(): ConfigApplyError | undefined {
    return this.#error
  }

  /** The node starts on `initial` (no part is running yet, so nothing to apply). */
  begin(initial: RunningConfig): void {
    this.#running = initial.parsed
    this.#runningVersion = initial.stamp.version
  }

  /** What differs from the started config and waits for a restart. */
  pendingRestart(): string[] {
    return this.#d.parts.flatMap((p) => p.restartOnly?.(this.#d.started, this.#running) ?? [])
  }

  /** ConfigSync's apply: never throws; a refusal rolls back and is recorded. */
  async apply(next: RunningConfig): Promise<void> {
    if (this.#d.active?.() === false) return
    const prev = this.#running
    const done: Reconfigurable[] = []
    this.#running = next.parsed
    for (const part of this.#d.parts) {
      try {
        await part.reconfigure(next.parsed, prev)
        done.push(part)
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e)
        this.#running = prev
        for (const p of done.reverse()) {
          try {
            await p.reconfigure(prev, next.parsed)
          } catch (back) {
            this.#log.error(
              { part: p.name, err: back instanceof Error ? back.message : String(back) },
              'could not give a part the previous config back',
            )
          }
        }
        this.#error = {
          version: next.stamp.version,
          part: part.name,
          message,
          at: new Date(this.#d.clock.wall()).toISOString(),
        }
        this.#log.error(
          {
            code: 'CONFIG_APPLY_FAILED',
            version: next.stamp.version,
            part: part.name,
            err: message,
            running: this.#runningVersion,
          },
          `cluster config version ${next.stamp.version} cannot be applied on this node (${part.name}: ${message}); it keeps running version ${this.#runningVersion}`,
        )
        return
      }
    }
    this.#runningVersion = next.stamp.version
    this.#error = undefined
  }
}
