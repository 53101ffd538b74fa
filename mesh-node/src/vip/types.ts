import type { VipConfig } from '@pgmesh/protocol'

export type VipState = 'MASTER' | 'BACKUP' | 'FAULT' | 'STOP'

export interface VipDriver {
  readonly kind: 'linux' | 'exec' | 'none'
  /** at start-up: removes a VIP a killed predecessor left on the interface (linux); idempotent */
  start(signal?: AbortSignal): Promise<void>
  /** MASTER: add the address and send gratuitous ARP. Any other state: the address is removed before the promise resolves. */
  enter(state: VipState, signal?: AbortSignal): Promise<void>
  /** gratuitous ARP again, if holding (called after a partition heals / a peer reconnects) */
  announce(): void
  /** whether this node holds the VIP now, as far as the driver knows */
  holds(): boolean
  /**
   * A live `cluster.vip` change, without dropping the VIP: notify scripts, gratuitous ARP and
   * drain settings apply from the next use; a new address replaces the old one (linux: added and
   * announced before the old one is removed; exec/none: a MASTER runs its master script again).
   * A change of `driver` is not applied (it needs a restart): logged, nothing else changes.
   * Rejects when the new address cannot be added (the old one is kept).
   */
  reconfigure(config: VipConfig, signal?: AbortSignal): Promise<void>
  /**
   * Before an orderly hand-over, while this node still holds the VIP and its lease: new
   * connections to the VIP are no longer accepted here (clients resend their SYN and reach the
   * next MASTER) and the sessions through it get up to `vip.drainMs` to end. The block lasts until
   * the address is removed, or until `unquiesce()`. Never rejects; a no-op when not holding.
   * Drivers that hold no address do not implement it.
   */
  quiesce?(signal?: AbortSignal): Promise<void>
  /** lifts what `quiesce()` did if the VIP is still held (the hand-over did not happen); idempotent */
  unquiesce?(): Promise<void>
  stop(): Promise<void>
  /**
   * The election tells the driver every lease renewal: this node may answer for the VIP until
   * `until` (the election's monotonic clock, the driver's `mono`); null: it holds no lease. The
   * linux driver refreshes its kernel fence to the remaining lease and renews the address
   * lifetime. Never waits, never throws.
   */
  lease?(until: number | null): void
  /** `listener` is told when the driver finds the address it held gone (the interface vanished, say) */
  onLost?(listener: (reason: string) => void): void
}
