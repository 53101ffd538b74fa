import { unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { err, type MaintenanceView, ok, pgmeshError, type Result } from '@pgmesh/protocol'
import { z } from 'zod'
import { readStateFile, writeStateFile } from '../json-file.js'
import type { Logger } from '../log.js'

/** An operator took the node out of service: why, and since when (wall clock, ms since the epoch). */
export interface MaintenanceState {
  readonly reason: string | null
  readonly since: number
}

const MaintenanceFileSchema = z
  .object({ reason: z.string().max(200).nullable(), since: z.number().int().min(0) })
  .strict()

/** Maintenance survives a restart: a node rebooted for its kernel upgrade must not take MASTER back by itself. */
export interface MaintenanceStore {
  load(): Promise<Result<MaintenanceState | null>>
  /** null: not in maintenance (the file is removed) */
  save(state: MaintenanceState | null): Promise<void>
}

export function fileMaintenanceStore(dataDir: string): MaintenanceStore {
  const file = join(dataDir, 'maintenance.json')
  return {
    load: () =>
      readStateFile(
        file,
        MaintenanceFileSchema,
        'MAINTENANCE_STATE_INVALID',
        'remove it to start out of maintenance, or fix it',
      ),
    async save(state) {
      if (state !== null) return writeStateFile(file, state)
      await unlink(file).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e
      })
    },
  }
}

export function memoryMaintenanceStore(
  initial: MaintenanceState | null = null,
): MaintenanceStore & { saved: MaintenanceState | null } {
  const store = {
    saved: initial,
    async load() {
      return ok(store.saved)
    },
    async save(s: MaintenanceState | null) {
      store.saved = s
    },
  }
  return store
}

export interface MaintenanceDeps {
  readonly node: string
  readonly store: MaintenanceStore
  /** makes the node (in)eligible; resolves once a MASTER has released the VIP */
  readonly setEligible: (eligible: boolean) => Promise<void>
  readonly proxy: {
    pause(): Promise<void>
    resume(): Promise<readonly { name: string; error: string }[]>
    activeSessions(): number
  }
  /**
   * The VIP driver's hand-over preparation (linux): before MASTER is given up, new connections
   * to the VIP are held off and its sessions get `vip.drainMs` to end, so no client loses one.
   */
  readonly vip?: {
    quiesce?(): Promise<void>
    unquiesce?(): Promise<void>
  }
  readonly wall: () => number
  readonly logger: Logger
  /** the state changed: a moment to gossip it */
  readonly onChange: () => void
}

/**
 * A node in maintenance is not eligible (a MASTER hands over at once, as on a failing weight-0
 * check), closes its listeners and drains their sessions, and otherwise stays a full member: it
 * gossips, votes and checks the databases. The order matters for clients on the VIP: the VIP
 * goes first, then the listeners close, so no connection reaching this node through the VIP is
 * refused; coming back, the listeners open before the node may take MASTER again. Before the VIP
 * goes, the driver stops taking new connections on it and lets its sessions end (`quiesce`),
 * while this node is still a MASTER with a live lease: a release the election makes by itself
 * (a lost lease) never waits for that.
 */
export class Maintenance {
  readonly #d: MaintenanceDeps
  readonly #log: Logger
  #state: MaintenanceState | null = null
  #queue: Promise<unknown> = Promise.resolve()

  constructor(deps: MaintenanceDeps) {
    this.#d = deps
    this.#log = deps.logger.child({ component: 'maintenance' })
  }

  get state(): MaintenanceState | null {
    return this.#state
  }

  /** At start, before the listeners open and the election runs: resumes a persisted maintenance. */
  async load(): Promise<void> {
    const r = await this.#d.store.load()
    if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`)
    if (r.value === null) return
    this.#state = r.value
    this.#log.warn(
      { reason: r.value.reason, since: new Date(r.value.since).toISOString() },
      'starting in maintenance: not eligible for MASTER, listeners closed (`pgmesh maintenance off` ends it)',
    )
    void this.#d.proxy.pause()
    await this.#d.setEligible(false)
  }

  view(): MaintenanceView {
    const s = this.#state
    return {
      node: this.#d.node,
      enabled: s !== null,
      reason: s?.reason ?? null,
      since: s === null ? null : new Date(s.since).toISOString(),
      activeSessions: this.#d.proxy.activeSessions(),
    }
  }

  /** One change at a time, in the order asked. */
  set(enabled: boolean, reason: string | undefined): Promise<Result<MaintenanceView>> {
    const next = this.#queue.then(() => this.#set(enabled, reason))
    this.#queue = next.catch(() => undefined)
    return next
  }

  async #set(enabled: boolean, reason: string | undefined): Promise<Result<MaintenanceView>> {
    const prev = this.#state
    if (!enabled && prev === null) return ok(this.view())
    const next: MaintenanceState | null = enabled
      ? { reason: reason ?? prev?.reason ?? null, since: prev?.since ?? this.#d.wall() }
      : null
    try {
      await this.#d.store.save(next)
    } catch (e) {
      return err(
        pgmeshError(
          'MAINTENANCE_STATE_INVALID',
          `cannot record the maintenance state: ${(e as Error).message}`,
        ),
      )
    }
    this.#state = next
    this.#d.onChange()
    if (next !== null && prev !== null) {
      this.#log.info({ reason: next.reason }, 'maintenance reason changed')
      return ok(this.view())
    }
    if (next !== null) {
      this.#log.warn(
        { reason: next.reason },
        'entering maintenance: handing MASTER over, then closing the listeners',
      )
      await this.#handOver()
      const draining = this.#d.proxy.pause()
      this.#log.info(
        { sessions: this.#d.proxy.activeSessions() },
        'in maintenance: listeners closed, sessions draining',
      )
      void draining.then(() => this.#log.info('maintenance: every listener drained'))
      return ok(this.view())
    }
    const failed = await this.#d.proxy.resume()
    await this.#d.setEligible(true)
    this.#log.info(
      { failed: failed.map((f) => f.name), was: prev?.reason ?? null },
      'maintenance ended: listeners open, eligible for MASTER again',
    )
    return ok(this.view())
  }

  /** Not eligible any more: a MASTER quiesces the VIP, then releases it (the driver lifts its block once the address is gone). */
  async #handOver(): Promise<void> {
    const vip = this.#d.vip
    await vip
      ?.quiesce?.()
      .catch((e: unknown) =>
        this.#log.warn({ err: (e as Error).message }, 'could not quiesce the VIP; handing it over at once'),
      )
    try {
      await this.#d.setEligible(false)
    } finally {
      // a no-op once released; lifts the block if this node kept the VIP after all
      await vip?.unquiesce?.().catch(() => undefined)
    }
  }
}
