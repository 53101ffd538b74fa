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
  stop(): Promise<void>
}
